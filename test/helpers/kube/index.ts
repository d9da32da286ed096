/**
 * A stand-in Kubernetes API server for tests: the real @kubernetes/client-node talks to it over
 * HTTPS as to a cluster. See docs/kube-standin.md for what it models and what it does not.
 */
export { startKubeStandIn, type KubeStandIn } from './server.js'
export { type ClusterOptions, type StandInCluster, type RecordedRequest } from './cluster.js'
export { type Offers, type Flavour } from './catalog.js'
export { type Right } from './auth.js'
export { nodeFixture } from './fixtures.js'
export { type BehaviourRule, type PodBehaviour } from './kubelet.js'
export { type WorkloadOptions } from './workloads.js'
export { type ProxiedAnswer, type ProxiedRequest } from './runtime-sim.js'
