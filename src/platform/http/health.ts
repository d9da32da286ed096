import type { FastifyInstance } from 'fastify'
import Type from 'typebox'
import type { Metrics } from './metrics.js'
import { StringEnum } from './schemas.js'

export interface DependencyCheck {
  name: string
  check(): Promise<void>
}

export interface DependencyStatus {
  status: 'up' | 'down'
  latencyMs: number
  error?: string
}

const CHECK_TIMEOUT_MS = 2_000

async function runCheck(dep: DependencyCheck): Promise<DependencyStatus> {
  const started = performance.now()
  let timer: NodeJS.Timeout | undefined
  try {
    await Promise.race([
      dep.check(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS)
      }),
    ])
    return { status: 'up', latencyMs: Math.round(performance.now() - started) }
  } catch (err) {
    // Only the error's class of failure, never connection strings or hosts' credentials.
    const message = err instanceof Error ? err.message.replace(/\/\/[^@/\s]*@/g, '//***@') : 'failed'
    return { status: 'down', latencyMs: Math.round(performance.now() - started), error: message.slice(0, 200) }
  } finally {
    clearTimeout(timer)
  }
}

export async function checkDependencies(deps: DependencyCheck[], metrics: Metrics) {
  const results = await Promise.all(deps.map(async (d) => [d.name, await runCheck(d)] as const))
  for (const [name, result] of results) metrics.dependencyUp.set({ dependency: name }, result.status === 'up' ? 1 : 0)
  return Object.fromEntries(results)
}

const DependencyStatusSchema = Type.Object({
  status: StringEnum(['up', 'down']),
  latencyMs: Type.Integer(),
  error: Type.Optional(Type.String()),
})

export function registerHealthRoutes(app: FastifyInstance, deps: DependencyCheck[], metrics: Metrics): void {
  app.get(
    '/healthz',
    {
      config: { public: true, rateLimit: false },
      schema: {
        operationId: 'getLiveness',
        tags: ['operations'],
        summary: 'Liveness: the process is up and serving',
        response: { 200: Type.Object({ status: Type.Literal('ok') }, { examples: [{ status: 'ok' }] }) },
      },
    },
    async () => ({ status: 'ok' as const }),
  )

  app.get(
    '/readyz',
    {
      config: { public: true, rateLimit: false },
      schema: {
        operationId: 'getReadiness',
        tags: ['operations'],
        summary: 'Readiness: database, cache and object store all answer',
        response: {
          200: Type.Object(
            {
              status: Type.Literal('ready'),
              checks: Type.Record(Type.String(), DependencyStatusSchema),
            },
            { examples: [{ status: 'ready', checks: { database: { status: 'up', latencyMs: 2 }, cache: { status: 'up', latencyMs: 1 } } }] },
          ),
          503: Type.Object(
            {
              status: Type.Literal('not_ready'),
              checks: Type.Record(Type.String(), DependencyStatusSchema),
            },
            {
              description: 'Not ready: a dependency did not answer within 2 s; `checks` says which',
              examples: [
                {
                  status: 'not_ready',
                  checks: { database: { status: 'up', latencyMs: 2 }, cache: { status: 'down', latencyMs: 2000, error: 'no answer within 2000 ms' } },
                },
              ],
            },
          ),
        },
      },
    },
    async (_request, reply) => {
      const checks = await checkDependencies(deps, metrics)
      const ready = Object.values(checks).every((c) => c.status === 'up')
      if (ready) return reply.status(200).send({ status: 'ready' as const, checks })
      return reply.status(503).send({ status: 'not_ready' as const, checks })
    },
  )

  app.get(
    '/metrics',
    {
      config: { public: true, rateLimit: false },
      schema: {
        operationId: 'getMetrics',
        tags: ['operations'],
        summary: 'Prometheus metrics in the text exposition format',
        produces: ['text/plain'],
        response: { 200: Type.String({ examples: ['modelplane_dependency_up{dependency="database"} 1\n'] }) },
      },
    },
    async (_request, reply) => {
      await checkDependencies(deps, metrics)
      reply.header('content-type', metrics.registry.contentType)
      return metrics.registry.metrics()
    },
  )
}
