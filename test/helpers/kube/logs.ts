import { type ContainerRun, type LogFollower } from './kubelet.js'
import { podSpec } from './pod-spec.js'
import { type ClusterContext, type KubeResponse } from './router.js'
import { badRequest, notFound } from './status.js'
import { type Workloads } from './workloads.js'

/**
 * GET /api/v1/namespaces/{ns}/pods/{name}/log: what the kubelet keeps of a container's output,
 * with the query parameters and the refusals of kube-apiserver (container name required when
 * there are several, an unknown container, no previous terminated container, a container still
 * waiting to start). `follow=true` keeps the answer open and writes lines as they come until the
 * container stops, the pod goes or the client leaves.
 */

interface LogLine {
  at: string
  text: string
}

function integer(query: URLSearchParams, name: string): number | undefined {
  const text = query.get(name)
  if (text === null || text === '') return undefined
  if (!/^-?\d+$/.test(text)) throw badRequest(`${name}: Invalid value: "${text.slice(0, 32)}": must be an integer`)
  const value = Number(text)
  if (value < 0 || (name === 'limitBytes' && value === 0)) {
    throw badRequest(`${name}: Invalid value: ${value}: must be greater than ${name === 'limitBytes' ? '0' : 'or equal to 0'}`)
  }
  return value
}

const truthy = (query: URLSearchParams, name: string) => ['true', '1'].includes(query.get(name) ?? '')

function waitingMessage(reason: string): string {
  if (reason === 'ErrImagePull' || reason === 'ImagePullBackOff') return "image can't be pulled"
  return reason
}

export function podLog(cluster: ClusterContext, workloads: Workloads | undefined, namespace: string, name: string, query: URLSearchParams): KubeResponse {
  const pods = cluster.catalog.find('', 'v1', 'pods')!
  const pod = cluster.store.get(pods, namespace, name)
  if (!pod) throw notFound({ group: '', resource: 'pods', name })
  const spec = podSpec(pod)
  const mains = spec.containers.map((c) => c.name)
  const inits = (spec.initContainers ?? []).map((c) => c.name)
  let containerName = query.get('container') ?? ''
  if (!containerName) {
    if (mains.length !== 1) {
      const initPart = inits.length ? ` or one of the init containers: [${inits.join(' ')}]` : ''
      throw badRequest(`a container name must be specified for pod ${name}, choose one of: [${mains.join(' ')}]${initPart}`)
    }
    containerName = mains[0]!
  }
  if (!mains.includes(containerName) && !inits.includes(containerName)) throw badRequest(`container ${containerName} is not valid for pod ${name}`)
  const tailLines = integer(query, 'tailLines')
  const limitBytes = integer(query, 'limitBytes')
  const sinceSeconds = integer(query, 'sinceSeconds')
  const previous = truthy(query, 'previous')
  const timestamps = truthy(query, 'timestamps')
  const follow = truthy(query, 'follow')
  const text = (l: LogLine) => `${timestamps ? `${l.at} ` : ''}${l.text}\n`
  const plain = (body: string): KubeResponse => ({ code: 200, contentType: 'text/plain', body })

  // A pod not yet on a node has no kubelet to ask: the API server answers nothing.
  const run = workloads?.kubelet.run(namespace, name)
  const c: ContainerRun | undefined = run && [...run.mains, ...run.inits].find((x) => x.spec.name === containerName)
  if (!spec.nodeName || !c) return plain('')

  let lines: LogLine[]
  let live = false
  if (previous) {
    if (!c.previous) throw badRequest(`previous terminated container "${containerName}" in pod "${name}" not found`)
    lines = c.previous
  } else if ('waiting' in c.state && c.logs.length === 0) {
    // A container waiting to start again after a crash serves the output of its last run.
    if (!c.previous) throw badRequest(`container "${containerName}" in pod "${name}" is waiting to start: ${waitingMessage(c.state.waiting.reason)}`)
    lines = c.previous
  } else {
    lines = c.logs
    live = 'running' in c.state
  }
  if (sinceSeconds !== undefined) {
    const from = Date.now() - sinceSeconds * 1000
    lines = lines.filter((l) => Date.parse(l.at) >= from)
  }
  if (tailLines !== undefined) lines = tailLines === 0 ? [] : lines.slice(-tailLines)
  let budget = limitBytes ?? Infinity
  const clip = (chunk: string): string => {
    if (budget === Infinity) return chunk
    const bytes = Buffer.from(chunk)
    const out = bytes.subarray(0, Math.max(0, budget)).toString('utf8')
    budget -= Math.min(budget, bytes.length)
    return out
  }
  const first = clip(lines.map(text).join(''))
  if (!follow || !live || budget <= 0) return plain(first)

  const container = c
  return {
    code: 200,
    contentType: 'text/plain',
    body: '',
    stream: {
      start(sink) {
        if (first) sink.write(first)
        const follower: LogFollower = {
          line(l) {
            const chunk = clip(text(l))
            if (chunk) sink.write(chunk)
            if (budget <= 0) follower.end()
          },
          end() {
            container.followers.delete(follower)
            sink.end()
          },
        }
        container.followers.add(follower)
        return () => container.followers.delete(follower)
      },
    },
  }
}
