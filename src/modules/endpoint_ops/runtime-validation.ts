import { isIP } from 'node:net'
import type { FieldProblem } from '../../platform/errors.js'
import type { RuntimeSpec } from './catalog.js'
import { ARG_PLACEHOLDERS } from './runtime-schema.js'
import type { ServingSettings } from './serving-settings.js'

/**
 * What the schemas cannot say about a runtime or a cluster's serving settings, checked before
 * anything is stored: each rule answers the field at fault and why, in words a user can act on.
 * Pure: no database, no network.
 */

// The reference grammar of container images (the distribution project's): a registry host is the
// first component when it has a dot or a port or is localhost; path components are lower case.
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])'
const HOST = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9a-fA-F:]+\\])(?::[0-9]{1,5})?`
const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*'
const HOST_RE = new RegExp(`^${HOST}$`)
const PATH_COMPONENT_RE = new RegExp(`^${PATH_COMPONENT}$`)
const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/
const DNS_SUBDOMAIN_RE = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/
const DNS_LABEL_RE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/
const RESOURCE_NAME_RE = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9.]*[a-z0-9])?\/[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$/
const PLACEHOLDER_RE = /\{([^{}]*)\}/g
const KNOWN_PLACEHOLDERS = new Set<string>(ARG_PLACEHOLDERS)

/** Whether the first path component of a reference names a registry rather than a Docker Hub namespace. */
const looksLikeHost = (component: string) => component.includes('.') || component.includes(':') || component === 'localhost' || component.startsWith('[')

/** Why `image` is not a reference without tag or digest, or null when it is one. */
export function imageProblem(image: string): string | null {
  if (image.includes('@')) return 'give the image without a digest; the pinned version goes in `tag`'
  const parts = image.split('/')
  const last = parts[parts.length - 1] ?? ''
  if (last.includes(':')) return 'give the image without its tag; the tag goes in `tag`'
  const [first, ...rest] = parts
  const paths = first !== undefined && rest.length > 0 && looksLikeHost(first) ? rest : parts
  if (paths !== parts && !HOST_RE.test(first!)) return `"${first}" is not a registry host (name or address, with an optional port)`
  if (paths.length === 0) return 'the image needs a repository path after the registry'
  for (const component of paths) {
    if (!PATH_COMPONENT_RE.test(component)) {
      return `"${component}" is not a repository path component: lower-case letters and digits, separated by ".", "_", "__" or "-"`
    }
  }
  return null
}

/** Why `tag` is not a pinned image tag, or null. */
export function tagProblem(tag: string): string | null {
  if (tag.trim() === '') return 'the tag may not be empty'
  if (tag.toLowerCase() === 'latest') return 'pin a version: `latest` moves, and a runtime image runs on every cluster'
  if (!TAG_RE.test(tag)) return 'a tag is letters, digits, "_", "." and "-", at most 128, not starting with "." or "-"'
  return null
}

/** The unknown placeholders of an arguments template, per token. */
export function argsProblems(args: readonly string[], field: string): FieldProblem[] {
  const problems: FieldProblem[] = []
  args.forEach((token, index) => {
    for (const match of token.matchAll(PLACEHOLDER_RE)) {
      if (!KNOWN_PLACEHOLDERS.has(match[1]!)) {
        problems.push({ field: `${field}.${index}`, message: `unknown placeholder {${match[1]}}; known: ${ARG_PLACEHOLDERS.map((p) => `{${p}}`).join(', ')}` })
      }
    }
    if (/[{}]/.test(token.replace(PLACEHOLDER_RE, ''))) {
      problems.push({ field: `${field}.${index}`, message: 'an unmatched brace: placeholders are written {name}' })
    }
  })
  return problems
}

/** Every problem of a runtime as it would be stored (after defaults and a patch are applied). */
export function runtimeProblems(spec: RuntimeSpec): FieldProblem[] {
  const problems: FieldProblem[] = []
  const image = imageProblem(spec.image)
  if (image) problems.push({ field: 'body.image', message: image })
  const tag = tagProblem(spec.tag)
  if (tag) problems.push({ field: 'body.tag', message: tag })
  spec.productTags.forEach((rule, index) => {
    const problem = tagProblem(rule.tag)
    if (problem) problems.push({ field: `body.productTags.${index}.tag`, message: problem })
  })
  problems.push(...argsProblems(spec.argsTemplate, 'body.argsTemplate'))
  return problems
}

// ---- serving settings ------------------------------------------------------------------------------

/** Why `prefix` is not `registry[:port][/path…]`, or null. */
export function registryPrefixProblem(prefix: string): string | null {
  const parts = prefix.replace(/\/+$/, '').split('/')
  const [host, ...paths] = parts
  if (!host || !looksLikeHost(host) || !HOST_RE.test(host)) {
    return 'start with a registry host (`registry.example.com`, `registry.corp:5000`, `localhost:5000`), then an optional path'
  }
  for (const component of paths) {
    if (!PATH_COMPONENT_RE.test(component)) return `"${component}" is not a repository path component: lower-case letters and digits, separated by ".", "_", "__" or "-"`
  }
  return null
}

/** Why `value` is not an http(s) URL without credentials, query or fragment, or null. */
export function serviceUrlProblem(value: string): string | null {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return 'not a URL'
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return 'an https (or http) URL'
  if (url.username || url.password) return 'no credentials in the URL: the address is shown to everyone who reads the settings'
  if (url.search || url.hash) return 'an origin with an optional path, without query or fragment'
  if (!url.hostname) return 'the URL needs a host'
  return null
}

/** Why `cidr` is not an IPv4 or IPv6 CIDR (or a single address), or null. */
export function cidrProblem(cidr: string): string | null {
  const [address = '', bits, ...rest] = cidr.split('/')
  const family = isIP(address)
  if (family === 0 || rest.length > 0) return 'an IPv4 or IPv6 address with an optional /prefix'
  if (bits === undefined) return null
  const max = family === 4 ? 32 : 128
  if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) return `the prefix length is 0 to ${max}`
  return null
}

/** Every problem of a tenant's serving settings for one cluster. */
export function servingSettingsProblems(settings: ServingSettings): FieldProblem[] {
  const problems: FieldProblem[] = []
  const add = (field: string, message: string | null) => {
    if (message) problems.push({ field: `body.${field}`, message })
  }
  if (settings.registryPrefix !== null) add('registryPrefix', registryPrefixProblem(settings.registryPrefix))
  settings.imagePullSecrets.forEach((name, index) =>
    add(`imagePullSecrets.${index}`, DNS_SUBDOMAIN_RE.test(name) ? null : 'a Secret name: lower-case DNS subdomain'),
  )
  if (settings.objectStoreUrl !== null) add('objectStoreUrl', serviceUrlProblem(settings.objectStoreUrl))
  if (settings.prometheusUrl !== null) add('prometheusUrl', serviceUrlProblem(settings.prometheusUrl))
  if (settings.ingressHostSuffix !== null) {
    add('ingressHostSuffix', DNS_SUBDOMAIN_RE.test(settings.ingressHostSuffix) && settings.ingressHostSuffix.includes('.') ? null : 'a DNS domain such as models.example.com (lower case)')
  }
  if (settings.tlsSecretName !== null) add('tlsSecretName', DNS_SUBDOMAIN_RE.test(settings.tlsSecretName) ? null : 'a Secret name: lower-case DNS subdomain')
  if (settings.tlsSecretName !== null && settings.ingressHostSuffix === null) add('tlsSecretName', 'a TLS secret needs ingressHostSuffix: without it no Ingress is made')
  if (settings.ingressClassName !== null) add('ingressClassName', DNS_SUBDOMAIN_RE.test(settings.ingressClassName) ? null : 'an IngressClass name: lower-case DNS subdomain')
  if (settings.ingressNamespace !== null) add('ingressNamespace', DNS_LABEL_RE.test(settings.ingressNamespace) ? null : 'a namespace name: lower-case DNS label')
  settings.apiServerCidrs.forEach((cidr, index) => add(`apiServerCidrs.${index}`, cidrProblem(cidr)))
  for (const resource of Object.keys(settings.quota?.devices ?? {})) {
    add(`quota.devices.${resource}`, RESOURCE_NAME_RE.test(resource) ? null : 'an extended resource name such as nvidia.com/gpu')
  }
  return problems
}
