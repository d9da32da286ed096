// The one door to Kubernetes: modules import from here and never build clients themselves.
export { AddressRefusedError, addressDenier, guardedLookup } from '../net/addresses.js'
export {
  createKubeClient,
  DEFAULT_KUBE_CLIENT_OPTIONS,
  type KubeClient,
  type KubeClientOptions,
  type KubeMethod,
  type KubeRequestInit,
  type KubeResponse,
  type WatchEvent,
} from './client.js'
export { type KubeCause, KubeError, type KubeErrorCode, toKubeError } from './errors.js'
export {
  KubeconfigRefused,
  type KubeconfigRules,
  type KubeTarget,
  parseKubeconfig,
  sealableTarget,
  targetFromSealed,
  targetIdentity,
} from './kubeconfig.js'
export {
  labelSelector,
  labelValue,
  MANAGED_BY,
  managedLabels,
  type ManagedLabelsInput,
  managedSelector,
  MANAGER,
  type OwnerKey,
  TENANT_LABEL,
} from './labels.js'
export { dns1123Name, isDns1123Label, shortHash } from './names.js'
export { counterValue, parseMetricsText, REQUEST_COUNTERS, requestDelta, type Sample } from './metrics-text.js'
export { parseQuantity } from './quantity.js'
export {
  judgeRollout,
  type PodProblem,
  podProblems,
  type RolloutDeployment,
  type RolloutJudgement,
  type RolloutPod,
  type RolloutReplicaSet,
  type RolloutState,
  workerView,
  type WorkerView,
} from './rollout.js'
export { pathWatchSource, runWatch, type WatchHandlers, type WatchLoopOptions, type WatchSource } from './watch.js'
export {
  APPLY_ORDER,
  apiVersionOf,
  applyManifest,
  applyManifests,
  type ApplyOptions,
  type ApplyResult,
  checkManifest,
  collectionPath,
  deleteManaged,
  type DeleteOptions,
  inApplyOrder,
  type KindInfo,
  kindInfo,
  type KubeManifest,
  type KubeObject,
  listManaged,
  MANAGED_KINDS,
  managedGone,
  type ManagedQuery,
  ManifestRefused,
  type ObjectRef,
  objectPath,
  redactSecret,
  TEARDOWN_ORDER,
} from './apply.js'
