import { REQUEST_COUNTERS } from '../../platform/kube/index.js'
import type { NodeFacts, Resources } from '../cluster_ops/index.js'
import type { Design, DesignInput, EndpointDesigner, EndpointSpec } from './endpoint-design.js'
import { endpointNames, generateManifests, redactSecrets } from './manifests.js'
import type { KubeManifest } from './manifest-types.js'
import { type CatalogRuntime, plan, type PlanCapabilities, type PlanRequest } from './plan.js'
import type { ServingSettings } from './serving-settings.js'

/** Where the planner's inputs come from beyond the endpoint itself. */
export interface DesignSources {
  runtimesFor(tenantId: string): Promise<CatalogRuntime[]>
  settingsFor(tenantId: string, clusterId: string): Promise<ServingSettings>
}

/** The weight files' extensions whose bytes count as weights (the rest are configs and tokenizers). */
const WEIGHT_FILE = /\.(safetensors|gguf|bin|pt|pth|onnx)$/i

function planRequest(spec: EndpointSpec): PlanRequest {
  const resources = spec.resources as { devices?: number; cpu?: string; memory?: string } | undefined
  return {
    name: spec.name,
    modelId: spec.modelId,
    ...(spec.versionId ? { versionId: spec.versionId } : {}),
    clusterId: spec.clusterId,
    ...(spec.runtime ? { runtime: spec.runtime } : {}),
    ...(spec.deviceType ? { deviceType: spec.deviceType as PlanRequest['deviceType'] } : {}),
    replicas: spec.replicas,
    ...(resources
      ? {
          resources: {
            ...(resources.devices ? { devices: resources.devices } : {}),
            ...(resources.cpu ? { cpu: cpuCores(resources.cpu) } : {}),
            ...(resources.memory ? { memoryGiB: memoryGiB(resources.memory) } : {}),
          },
        }
      : {}),
    ...(spec.autoscale ? { autoscale: spec.autoscale } : {}),
    ...(spec.maxModelLen ? { maxModelLen: spec.maxModelLen } : {}),
    ...(spec.maxConcurrency ? { maxConcurrency: spec.maxConcurrency } : {}),
    ...(spec.env ? { env: spec.env } : {}),
    ...(spec.args ? { args: spec.args } : {}),
    ...(spec.idleScaleToZeroMinutes ? { idleScaleToZeroMinutes: spec.idleScaleToZeroMinutes } : {}),
  }
}

function cpuCores(q: string): number {
  return q.endsWith('m') ? Number(q.slice(0, -1)) / 1000 : Number(q)
}

function memoryGiB(q: string): number {
  const m = /^([0-9.]+)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(q)
  if (!m) return 0
  const unit: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12 }
  return (Number(m[1]) * (m[2] ? unit[m[2]]! : 1)) / 2 ** 30
}

/** The pod template carries what must restart the runtime when it changes but lives elsewhere (the key). */
function withRestartTriggers(manifests: KubeManifest[], spec: EndpointSpec): KubeManifest[] {
  return manifests.map((m) => {
    if (m.kind !== 'Deployment') return m
    const deployment = m as KubeManifest & { spec: { template: { metadata?: { annotations?: Record<string, string> } } } }
    const template = deployment.spec.template
    return {
      ...deployment,
      spec: {
        ...deployment.spec,
        template: {
          ...template,
          metadata: {
            ...template.metadata,
            annotations: { ...(template.metadata?.annotations ?? {}), 'modelplane.io/api-key-generation': String(spec.apiKeyGeneration ?? 0) },
          },
        },
      },
    }
  })
}

const counterOf = (engine: string) => (REQUEST_COUNTERS as Record<string, { metric: string; port?: number }>)[engine]

/** Plans with the planner and generates with the manifest generator: one design for plan, apply and drift checks. */
export function createEndpointDesigner(sources: DesignSources): EndpointDesigner {
  async function decide(input: DesignInput) {
    const { cluster, nodes, model, spec } = input
    const runtimes = await sources.runtimesFor(input.endpoint.tenantId)
    const settings = await sources.settingsFor(input.endpoint.tenantId, cluster.id)
    const files = input.weights.map((w) => ({ path: w.path, size: w.size }))
    const decision = plan({
      request: planRequest(spec),
      model: {
        id: model.id,
        name: model.name,
        tasks: model.tasks,
        files,
        format: model.format,
        parameterCount: model.parameterCount,
        dtype: model.dtype,
        quantization: model.quantization,
        contextLength: model.contextLength,
        metadata: model.metadata,
        weightFileBytes: files.filter((f) => WEIGHT_FILE.test(f.path)).reduce((n, f) => n + f.size, 0),
      },
      cluster: {
        id: cluster.id,
        platform: cluster.platform,
        capabilities: cluster.capabilities as PlanCapabilities | null,
        // Only nodes a sync has seen ready and schedulable can take pods; the planner says why for the rest.
        nodes: nodes.map((n) => ({ facts: n.facts as unknown as NodeFacts, used: n.used as unknown as Resources })),
      },
      runtimes,
      settings: { prometheusUrl: settings.prometheusUrl },
    })
    const runtime = runtimes.find((r) => r.id === decision.runtime.id)!
    const manifests = withRestartTriggers(
      generateManifests({
        endpoint: { id: input.endpoint.id, name: input.endpoint.name, tenantId: input.endpoint.tenantId },
        model: { id: model.id, name: model.name },
        version: input.version ? { id: input.version.id, label: input.version.label } : null,
        runtime,
        cluster: { id: cluster.id, platform: cluster.platform, server: cluster.server, capabilities: cluster.capabilities as PlanCapabilities | null },
        settings,
        plan: decision,
        ...(spec.env ? { env: spec.env } : {}),
        weights: input.weights,
        apiKey: input.apiKey,
      }),
      spec,
    )
    return { decision, manifests, runtime, settings }
  }

  return {
    async design(input: DesignInput): Promise<Design> {
      const { decision, manifests, runtime, settings } = await decide(input)
      const names = endpointNames(input.endpoint)
      const host = settings.ingressHostSuffix ? `${names.base}.${settings.ingressHostSuffix}` : null
      return {
        runtime: runtime.name,
        deviceType: decision.deviceType,
        namespace: names.namespace,
        workload: names.base,
        service: names.base,
        port: runtime.port,
        healthPath: runtime.healthPath,
        modelProbePath: runtime.modelProbePath,
        metricsPath: runtime.metricsPath,
        requestCounter: counterOf(runtime.engine)?.metric ?? 'http_requests_total',
        metricsPort: counterOf(runtime.engine)?.port ?? runtime.port,
        waitForOldPods: decision.device.resourceName !== null,
        plan: {
          runtime: decision.runtime,
          deviceType: decision.deviceType,
          device: decision.device,
          resources: decision.resources,
          engineArgs: decision.engineArgs,
          maxModelLen: decision.maxModelLen,
          maxConcurrency: decision.maxConcurrency,
          strategy: decision.strategy,
          autoscaler: decision.autoscaler,
          placement: decision.placement,
          assumptions: decision.assumptions,
          baseUrl: host ? `https://${host}/v1` : null,
        },
        manifests,
      }
    },
    async planOnly(input: DesignInput) {
      const { decision, manifests } = await decide(input)
      return { decision, manifests: redactSecrets(manifests) }
    },
  }
}
