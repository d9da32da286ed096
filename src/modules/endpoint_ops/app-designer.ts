import type { Config } from '../../config.js'
import type { AppDesigner, AppDesignInput, Design } from './endpoint-design.js'
import { APP_HEALTH_PATH, APP_PORT, appHost, appNames, codeHash, generateAppManifests } from './apps/app-manifests.js'
import type { ServingSettings } from './serving-settings.js'

/** The runner's request counter (deploy/runner) on its metrics route, read through the pod proxy. */
export const APP_METRICS_PATH = '/metrics'
export const APP_REQUEST_COUNTER = 'http_requests_total'

export interface AppDesignSources {
  settingsFor(tenantId: string, clusterId: string): Promise<ServingSettings>
  apps: Config['apps']
}

/**
 * An app's design: its manifests (pure, from apps/app-manifests.ts) and where the endpoint
 * machinery looks at it — the runner's health route through the Service proxy as the probe, its
 * request counter for idle scale to zero. An app holds no accelerator, so a rollout does not wait
 * for old pods to be gone.
 */
export function createAppDesigner(sources: AppDesignSources): AppDesigner {
  return {
    async design(input: AppDesignInput): Promise<Design> {
      const { endpoint, spec, cluster } = input
      const settings = await sources.settingsFor(endpoint.tenantId, cluster.id)
      const app = { id: endpoint.id, name: endpoint.name, tenantId: endpoint.tenantId }
      const hash = codeHash(spec.files)
      const names = appNames(app, hash)
      const manifests = generateAppManifests({
        app,
        files: spec.files,
        entry: spec.entry,
        ...(spec.env ? { env: spec.env } : {}),
        runnerImage: sources.apps.runnerImage,
        resources: sources.apps.resources,
        replicas: spec.replicas,
        cluster: {
          id: cluster.id,
          platform: cluster.platform,
          server: cluster.server,
          capabilities: cluster.capabilities as { openshiftRoutes?: boolean; defaultIngressClass?: string | null; traefik?: boolean } | null,
        },
        settings,
        domain: sources.apps.domain,
      })
      const host = appHost({ app, domain: sources.apps.domain, settings })
      return {
        runtime: null,
        deviceType: null,
        namespace: names.namespace,
        workload: names.base,
        service: names.base,
        port: APP_PORT,
        healthPath: APP_HEALTH_PATH,
        // An app has no model: it is up when its health route answers 200.
        modelProbePath: APP_HEALTH_PATH,
        metricsPath: APP_METRICS_PATH,
        metricsPort: APP_PORT,
        requestCounter: APP_REQUEST_COUNTER,
        waitForOldPods: false,
        plan: {
          codeHash: hash,
          codeConfigMap: names.codeConfigMap,
          runnerImage: sources.apps.runnerImage,
          resources: sources.apps.resources,
          host,
          baseUrl: host ? `https://${host}` : null,
        },
        manifests,
      }
    },
  }
}
