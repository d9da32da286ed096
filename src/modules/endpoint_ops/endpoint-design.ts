import type { KubeManifest } from '../../platform/kube/index.js'
import type { ClusterNodeRow, ClusterRow } from '../cluster_ops/tables.js'
import type { ModelRow, ModelVersionRow } from '../model_ops/tables.js'
import type { AppFile } from './apps/files.js'
import type { PlanDecision } from './plan.js'

/** What an endpoint row serves: a model on a runtime, or a user's code on the app runner. */
export type EndpointKind = 'model' | 'app'

/** What a user asks for when deploying (and, field by field, when changing) an endpoint. */
export interface EndpointSpec {
  name: string
  modelId: string
  versionId?: string
  clusterId: string
  runtime?: string
  deviceType?: string
  replicas: number
  resources?: Record<string, unknown>
  autoscale?: { min: number; max: number; targetConcurrency: number }
  idleScaleToZeroMinutes?: number
  env?: Record<string, string>
  args?: string[]
  maxModelLen?: number
  maxConcurrency?: number
  /** set when the idle sweep scales to zero: what wake goes back to */
  replicasBeforeIdle?: number
  /** moves when the API key is rotated, so the pods restart with the new one */
  apiKeyGeneration?: number
}

/** The spec of an endpoint of kind `app`: the user's validated files run by the runner image. */
export interface AppSpec {
  name: string
  clusterId: string
  files: AppFile[]
  /** the Python file the runner imports */
  entry: string
  /** sha256 of the files (apps/app-manifests codeHash), kept so a page of apps need not read them */
  codeHash?: string
  env?: Record<string, string>
  /** 1, or 0 while scaled to zero */
  replicas: number
  /** without a request for this long the app is scaled to zero (APP_IDLE_MINUTES unless the app sets its own) */
  idleScaleToZeroMinutes?: number
  replicasBeforeIdle?: number
}

export interface AppDesignInput {
  endpoint: { id: string; tenantId: string; name: string; revision: number }
  spec: AppSpec
  cluster: ClusterRow
}

/** Generates an app's manifests and says where to look at it. */
export interface AppDesigner {
  design(input: AppDesignInput): Promise<Design>
}

export interface WeightFile {
  path: string
  size: number
  sha256: string | null
  /** a presigned GET the cluster can reach; empty when only planning */
  url: string
}

export interface DesignInput {
  endpoint: { id: string; tenantId: string; name: string; revision: number }
  spec: EndpointSpec
  cluster: ClusterRow
  nodes: ClusterNodeRow[]
  model: ModelRow
  version: ModelVersionRow | null
  weights: WeightFile[]
  apiKey: string
}

/** The desired state of one endpoint revision on its cluster, and where to look at it. */
export interface Design {
  /** null for an app (it runs on the runner image, not a catalog runtime) */
  runtime: string | null
  deviceType: string | null
  namespace: string
  /** the Deployment */
  workload: string
  service: string
  port: number
  healthPath: string
  modelProbePath: string
  metricsPath: string
  /** the container port its metrics are served on (TEI serves them on a port of their own) */
  metricsPort: number
  /** the runtime's counter of served requests on its metrics path */
  requestCounter: string
  /** accelerators: a rollout is done only when the old pods (holding devices) are gone */
  waitForOldPods: boolean
  /** the planner's answer, kept on the endpoint (resources, engine arguments, placement, baseUrl) */
  plan: Record<string, unknown>
  manifests: KubeManifest[]
}

/** Plans a spec on a cluster and generates its manifests: one pure function for plan, apply and drift checks. */
export interface EndpointDesigner {
  design(input: DesignInput): Promise<Design>
  /** The decision and the manifests a deploy would apply, Secret values redacted: for POST /v1/endpoints/plan. */
  planOnly(input: DesignInput): Promise<{ decision: PlanDecision; manifests: KubeManifest[] }>
}
