import { describe, expect, it } from 'vitest'
import { SEEDED_RUNTIMES } from '../../../src/modules/endpoint_ops/catalog.js'
import {
  argsProblems,
  cidrProblem,
  imageProblem,
  registryPrefixProblem,
  runtimeProblems,
  serviceUrlProblem,
  servingSettingsProblems,
  tagProblem,
} from '../../../src/modules/endpoint_ops/runtime-validation.js'
import { DEFAULT_SERVING_SETTINGS } from '../../../src/modules/endpoint_ops/serving-settings.js'

describe('runtime rules', () => {
  it('accepts every seeded runtime as it is', () => {
    for (const seed of SEEDED_RUNTIMES) expect(runtimeProblems(seed), seed.name).toEqual([])
  })

  it.each([
    'vllm/vllm-openai',
    'ghcr.io/ggml-org/llama.cpp',
    'ghcr.io/huggingface/text-embeddings-inference',
    'localhost:5000/vllm',
    'registry.corp:5000/mirror/team/vllm-openai',
    '10.0.0.5:5000/vllm',
    'ubuntu',
    'my__org/my_image',
  ])('accepts the image %s', (image) => {
    expect(imageProblem(image)).toBeNull()
  })

  it.each([
    ['vllm/vllm-openai:v1', /tag goes in `tag`/],
    ['registry.corp:5000/vllm:v1', /tag goes in `tag`/],
    ['vllm@sha256:0123', /digest/],
    ['VLLM/openai', /path component/],
    ['vllm//openai', /path component/],
    ['vllm/-openai', /path component/],
    ['registry.corp:5000/', /path component/],
    ['-bad.host:1/x', /registry host/],
    ['vllm/openai\n', /path component/],
  ])('refuses the image %j', (image, message) => {
    expect(imageProblem(image)).toMatch(message)
  })

  it('pins tags: never latest, never empty, tag grammar only', () => {
    expect(tagProblem('v0.29.0')).toBeNull()
    expect(tagProblem('rocm10.0.0_ubuntu24.04_py3.14')).toBeNull()
    for (const bad of ['latest', 'Latest', '', ' ', '.hidden', '-x', 'a'.repeat(129), 'v1 2']) expect(tagProblem(bad), bad).not.toBeNull()
  })

  it('knows the placeholders, and names the token of an unknown one', () => {
    expect(argsProblems(['--ctx-size', '{contextTotal}', '--x={maxModelLen}', 'plain'], 'body.argsTemplate')).toEqual([])
    expect(argsProblems(['--a', '{apiKey}'], 'body.argsTemplate')).toEqual([
      { field: 'body.argsTemplate.1', message: expect.stringMatching(/unknown placeholder \{apiKey\}/) },
    ])
    expect(argsProblems(['{port'], 'f')).toHaveLength(1)
    expect(argsProblems(['port}'], 'f')).toHaveLength(1)
  })

  it('checks product tags too', () => {
    const spec = { ...SEEDED_RUNTIMES[0]!, productTags: [{ products: ['H100'], tag: 'latest' }] }
    expect(runtimeProblems(spec)).toEqual([{ field: 'body.productTags.0.tag', message: expect.any(String) }])
  })
})

describe('serving settings rules', () => {
  it('accepts the defaults and a full set', () => {
    expect(servingSettingsProblems(DEFAULT_SERVING_SETTINGS)).toEqual([])
    expect(
      servingSettingsProblems({
        registryPrefix: 'registry.corp:5000/mirror',
        imagePullSecrets: ['corp-registry'],
        objectStoreUrl: 'http://10.1.2.3:9000/bucket-root',
        ingressHostSuffix: 'models.example.com',
        tlsSecretName: 'wildcard',
        ingressClassName: 'nginx',
        ingressNamespace: 'ingress-nginx',
        apiServerCidrs: ['10.0.0.0/8', '2001:db8::/32', '172.16.0.1'],
        prometheusUrl: 'https://prometheus.example.com',
        quota: { cpu: 8, devices: { 'nvidia.com/gpu': 2, 'habana.ai/gaudi': 0 } },
      }),
    ).toEqual([])
  })

  it('wants a registry host in front of the prefix', () => {
    expect(registryPrefixProblem('localhost:5000')).toBeNull()
    expect(registryPrefixProblem('[::1]:5000/mirror')).toBeNull()
    for (const bad of ['mirror', 'mirror/images', 'https://registry.corp', 'registry.corp/UPPER', 'registry.corp//x']) {
      expect(registryPrefixProblem(bad), bad).not.toBeNull()
    }
  })

  it('takes no credentials, query or other scheme in a URL', () => {
    expect(serviceUrlProblem('https://minio.corp:9000')).toBeNull()
    expect(serviceUrlProblem('https://key:secret@minio.corp')).toMatch(/no credentials/)
    expect(serviceUrlProblem('https://key@minio.corp')).toMatch(/no credentials/)
    expect(serviceUrlProblem('https://minio.corp/?token=x')).toMatch(/without query/)
    expect(serviceUrlProblem('https://minio.corp/#x')).toMatch(/without query/)
    expect(serviceUrlProblem('file:///etc/passwd')).toMatch(/https/)
    expect(serviceUrlProblem('not a url')).toMatch(/not a URL/)
  })

  it('reads CIDRs of both families with their prefix bounds', () => {
    for (const good of ['0.0.0.0/0', '10.0.0.1/32', '10.0.0.1', '::/0', 'fe80::1/128']) expect(cidrProblem(good), good).toBeNull()
    for (const bad of ['10.0.0.1/33', '::1/129', '10.0.0/8', '10.0.0.1/', '10.0.0.1/8/8', 'example.com/8', '10.0.0.1/-1']) {
      expect(cidrProblem(bad), bad).not.toBeNull()
    }
  })
})
