/**
 * A stand-in Hugging Face hub for tests: @huggingface/hub and plain HTTP clients talk to it as to
 * huggingface.co (set `hubUrl` / MODEL_HUB_URL to its url). See docs/hub-standin.md for what it
 * models and what it does not.
 */
export { startHubStandIn, type HubStandIn, type HubStandInOptions } from './server.js'
export { type RepoSpec, type FileSpec } from './repos.js'
export { safetensorsFile, type SafetensorsDtype, type TensorSpec } from './safetensors.js'
export { ggufFile, type GgufValue, type GgufTensorSpec, type GgufTensorType } from './gguf.js'
export { modelCard, configJson, type ConfigOptions } from './cards.js'
export { tinyModelRepo, tinyLlamaTensors } from './tiny-repo.js'
export { type Content, readAll, computeDigests } from './content.js'
