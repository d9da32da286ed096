import { describe, expect, it } from 'vitest'
import { DEFAULT_APP_RUNNER_IMAGE, loadConfig } from '../../src/config.js'

describe('config: apps', () => {
  it('defaults to the pinned runner image, a day of idleness, no domain and small runner resources', () => {
    const { apps } = loadConfig({})
    expect(apps).toEqual({
      runnerImage: DEFAULT_APP_RUNNER_IMAGE,
      idleMinutes: 1440,
      domain: null,
      resources: { cpuRequest: '100m', cpuLimit: '1', memoryRequest: '128Mi', memoryLimit: '512Mi' },
    })
    expect(DEFAULT_APP_RUNNER_IMAGE).toMatch(/:\d+\.\d+\.\d+$/)
  })

  it('takes a runner image pinned by tag or digest, behind a registry port too', () => {
    const digest = `registry.corp.example:5000/mirror/app-runner@sha256:${'a'.repeat(64)}`
    expect(loadConfig({ APP_RUNNER_IMAGE: digest }).apps.runnerImage).toBe(digest)
    expect(loadConfig({ APP_RUNNER_IMAGE: 'registry.corp.example:5000/app-runner:1.2.3' }).apps.runnerImage).toBe('registry.corp.example:5000/app-runner:1.2.3')
    expect(loadConfig({ APPS_DOMAIN: 'apps.example.com', APP_IDLE_MINUTES: '30', APP_MEMORY_LIMIT: '1Gi' }).apps).toMatchObject({
      domain: 'apps.example.com',
      idleMinutes: 30,
      resources: { memoryLimit: '1Gi' },
    })
  })

  it('refuses a moving or missing tag, a bad domain and a bad quantity, naming the variable', () => {
    for (const image of ['ghcr.io/modelplane/app-runner:latest', 'ghcr.io/modelplane/app-runner', 'registry:5000/app-runner']) {
      expect(() => loadConfig({ APP_RUNNER_IMAGE: image }), image).toThrow(/APP_RUNNER_IMAGE/)
    }
    expect(() => loadConfig({ APPS_DOMAIN: 'Apps_Example.com' })).toThrow(/APPS_DOMAIN/)
    expect(() => loadConfig({ APP_MEMORY_LIMIT: '512MB' })).toThrow(/APP_MEMORY_LIMIT/)
    expect(() => loadConfig({ APP_IDLE_MINUTES: '0' })).toThrow(/APP_IDLE_MINUTES/)
  })
})

describe('config: problems found while the sections are built', () => {
  it('stops the start instead of dropping them (a mistyped deny-list must not become an empty one)', () => {
    expect(() => loadConfig({ CLUSTER_DENIED_CIDRS: '169.254.0.0/16,bogus' })).toThrow(/CLUSTER_DENIED_CIDRS/)
    expect(() => loadConfig({ OUTBOUND_CA_FILE: '/nonexistent/ca.pem' })).toThrow(/OUTBOUND_CA_FILE/)
  })
})
