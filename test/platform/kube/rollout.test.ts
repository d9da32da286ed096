import fs from 'node:fs'
import { describe, expect, it } from 'vitest'
import { judgeRollout, podProblems, type RolloutDeployment, type RolloutPod, type RolloutReplicaSet, workerView } from '../../../src/platform/kube/index.js'

// Judged on answers recorded from kube-apiserver 1.26 and kube-controller-manager (test/fixtures/kube).
const recorded = <T>(name: string): T => JSON.parse(fs.readFileSync(new URL(`../../fixtures/kube/${name}.json`, import.meta.url), 'utf8')) as T

type Stage = RolloutDeployment & { stage: string }
const stages = recorded<Stage[]>('deployment-rollout-status-sequence')
const replicaSets = recorded<RolloutReplicaSet[]>('replicasets-during-rollout')
const unscheduled = recorded<RolloutPod>('pod-pending-unscheduled')

const withName = (s: Stage): RolloutDeployment => ({ ...s, metadata: { ...s.metadata, name: 'web' } })

describe('judging the recorded rollout step by step', () => {
  it('gives kubectl rollout status verdicts at each stage', () => {
    const verdicts = stages.map((s) => {
      const j = judgeRollout({ deployment: withName(s), replicaSets, pods: [], waitForOldPods: false })
      return [j.state, j.reason, j.message]
    })
    expect(verdicts).toEqual([
      ['progressing', 'ReplicasNotAvailable', 'Waiting for deployment "web" rollout to finish: 0 of 2 updated replicas are available...'],
      ['complete', 'RolloutComplete', 'deployment "web" successfully rolled out'],
      ['progressing', 'ReplicasNotUpdated', 'Waiting for deployment "web" rollout to finish: 1 out of 2 new replicas have been updated...'],
      ['progressing', 'OldReplicasPendingTermination', 'Waiting for deployment "web" rollout to finish: 1 old replicas are pending termination...'],
      ['complete', 'RolloutComplete', 'deployment "web" successfully rolled out'],
      ['complete', 'RolloutComplete', 'deployment "web" successfully rolled out'],
      ['failed', 'ProgressDeadlineExceeded', 'deployment "web" exceeded its progress deadline'],
    ])
  })

  it('names the newest ReplicaSet revision', () => {
    expect(judgeRollout({ deployment: withName(stages[6]!), replicaSets, pods: [], waitForOldPods: false }).revision).toBe('3')
  })

  it('waits for a generation the controller has not observed yet', () => {
    const s = stages[1]!
    const j = judgeRollout({ deployment: { ...withName(s), metadata: { name: 'web', generation: 2 } }, replicaSets, pods: [], waitForOldPods: false })
    expect(j).toMatchObject({ state: 'progressing', reason: 'SpecUpdateNotObserved', message: 'Waiting for deployment spec update to be observed...' })
  })

  it('with waitForOldPods, "all new pods ready" is not done while a pod of the old ReplicaSet remains', () => {
    const allReady = withName(stages[4]!)
    const rsNew: RolloutReplicaSet = { metadata: { name: 'web-5d65fc7b5d', labels: { 'pod-template-hash': '5d65fc7b5d' }, annotations: { 'deployment.kubernetes.io/revision': '2' } } }
    const rsOld: RolloutReplicaSet = { metadata: { name: 'web-68d77795bc', labels: { 'pod-template-hash': '68d77795bc' }, annotations: { 'deployment.kubernetes.io/revision': '1' } } }
    const pod = (name: string, hash: string, terminating = false): RolloutPod => ({
      metadata: { name, labels: { 'pod-template-hash': hash }, ...(terminating ? { deletionTimestamp: '2026-11-30T10:27:34Z' } : {}) },
      status: { phase: 'Running' },
    })
    const pods = [pod('web-5d65fc7b5d-nzjjr', '5d65fc7b5d'), pod('web-5d65fc7b5d-kqhgr', '5d65fc7b5d'), pod('web-68d77795bc-ctwjc', '68d77795bc', true)]
    const input = { deployment: allReady, replicaSets: [rsOld, rsNew] }
    expect(judgeRollout({ ...input, pods, waitForOldPods: false }).state).toBe('complete')
    expect(judgeRollout({ ...input, pods, waitForOldPods: true })).toMatchObject({
      state: 'progressing',
      reason: 'OldPodsTerminating',
      message: 'Waiting for deployment "web" rollout to finish: 1 old pods are still terminating...',
      revision: '2',
    })
    expect(judgeRollout({ ...input, pods: pods.slice(0, 2), waitForOldPods: true }).state).toBe('complete')
  })
})

describe('pod problems', () => {
  it('say nothing of a pod that merely waits for a scheduler', () => {
    expect(podProblems([unscheduled])).toEqual([])
    expect(workerView(unscheduled)).toEqual({ name: 'web-68d77795bc-6dc2m', node: null, phase: 'Pending', ready: false, restarts: 0, startedAt: null, reasons: [] })
  })

  it('carry the reason, the message and the restarts of each stuck container', () => {
    const pod: RolloutPod = {
      metadata: { name: 'p' },
      spec: { nodeName: 'n1' },
      status: {
        phase: 'Running',
        startTime: new Date('2026-11-30T10:00:00Z'),
        initContainerStatuses: [{ name: 'init', state: { terminated: { exitCode: 0, reason: 'Completed' } }, restartCount: 0 }],
        containerStatuses: [
          { name: 'a', state: { waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image "x"' } }, restartCount: 0 },
          { name: 'b', state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 20s restarting failed container=b' } }, lastState: { terminated: { exitCode: 2, reason: 'Error' } }, restartCount: 3 },
          { name: 'c', state: { running: {} }, lastState: { terminated: { exitCode: 137, reason: 'OOMKilled' } }, restartCount: 1 },
          { name: 'd', state: { waiting: { reason: 'ContainerCreating' } }, restartCount: 0 },
        ],
      },
    }
    expect(podProblems([pod])).toEqual([
      { pod: 'p', container: 'a', reason: 'ImagePullBackOff', message: 'Back-off pulling image "x"', restarts: 0 },
      { pod: 'p', container: 'b', reason: 'CrashLoopBackOff', message: 'back-off 20s restarting failed container=b; last exit code 2 (Error)', restarts: 3 },
      { pod: 'p', container: 'c', reason: 'OOMKilled', message: 'the container ran out of memory and was killed (exit code 137)', restarts: 1 },
    ])
    expect(workerView(pod)).toEqual({
      name: 'p', node: 'n1', phase: 'Running', ready: false, restarts: 4, startedAt: '2026-11-30T10:00:00.000Z',
      reasons: ['ImagePullBackOff', 'CrashLoopBackOff', 'OOMKilled', 'ContainerCreating'],
    })
  })

  it('report an unschedulable pod with the scheduler message and put the first problem in the verdict', () => {
    const message = '0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod..'
    const pod: RolloutPod = { ...unscheduled, status: { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message }] } }
    const j = judgeRollout({ deployment: withName(stages[0]!), replicaSets, pods: [pod], waitForOldPods: false })
    expect(j.pods).toEqual([{ pod: 'web-68d77795bc-6dc2m', reason: 'Unschedulable', message, restarts: 0 }])
    expect(j.message).toBe(`Waiting for deployment "web" rollout to finish: 0 of 2 updated replicas are available... (pod web-68d77795bc-6dc2m: Unschedulable: ${message})`)
  })
})
