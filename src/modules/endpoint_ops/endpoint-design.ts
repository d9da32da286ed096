import type { KubeManifest } from '../../platform/kube/index.js'
import type { ClusterNodeRow, ClusterRow } from '../cluster_ops/tables.js'
import type { ModelRow, ModelVersionRow } from '../model_ops/tables.js'

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
  runtime: string
  deviceType: string
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
  planOnly(input: DesignInput): Promise<{ decision: Record<string, unknown>; manifests: KubeManifest[] }>
}
