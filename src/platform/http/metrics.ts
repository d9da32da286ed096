import type { FastifyInstance } from 'fastify'
import { collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'

export interface Metrics {
  registry: Registry
  dependencyUp: Gauge<'dependency'>
}

/** A registry per app, so several apps in one process (tests) never share or clash. */
export function registerMetrics(app: FastifyInstance): Metrics {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: 'modelplane_' })
  const duration = new Histogram({
    name: 'modelplane_http_request_duration_seconds',
    help: 'HTTP request duration by method, route template and status code',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  })
  const dependencyUp = new Gauge({
    name: 'modelplane_dependency_up',
    help: '1 when the dependency answered its last health check, 0 when it did not',
    labelNames: ['dependency'] as const,
    registers: [registry],
  })

  // One labelled child per (method, route, status): observing through it skips hashing the labels.
  const children = new Map<string, ReturnType<typeof duration.labels>>()
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched'
    const key = `${request.method} ${route} ${reply.statusCode}`
    let child = children.get(key)
    if (!child) {
      child = duration.labels({ method: request.method, route, status_code: String(reply.statusCode) })
      children.set(key, child)
    }
    child.observe(reply.elapsedTime / 1000)
    done()
  })
  return { registry, dependencyUp }
}
