import pg from 'pg'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openDatabase } from '../../../src/platform/db/client.js'
import { migrate } from '../../../src/platform/db/migrate.js'
import { declaredStatements } from '../../../src/platform/db/raw.js'
// Imported for its statements: the hub declares them when its modules load.
import '../../../src/modules/workflow_ops/hub/index.js'
import { freshDatabase } from '../../helpers/database.js'

/**
 * The hub's statements are prepared once per pooled connection, and PostgreSQL settles on a
 * generic plan for them (and for the foreign-key checks and cascades between the hub's tables)
 * while the tables are still new and never analysed: the state of every fresh install. A plan that
 * finds an instance by scanning all of a hub's rows stays cheap in the first minutes and then costs
 * a scan per workflow step for as long as the connection lives. These plans are read here on a
 * freshly migrated database, as the hub's connections would make them.
 */
const fresh = freshDatabase('plans')

let client: pg.Client

beforeAll(async () => {
  await fresh.create()
  const handle = await openDatabase({ url: fresh.url, dataDir: '/tmp', poolMax: 1, log: pino({ level: 'silent' }) })
  try {
    await migrate(handle)
  } finally {
    await handle.close()
  }
  client = new pg.Client({ connectionString: fresh.url })
  await client.connect()
  await client.query('set plan_cache_mode = force_generic_plan')
})

afterAll(async () => {
  await client?.end()
  await fresh.drop()
})

interface PlanNode {
  'Node Type': string
  'Relation Name'?: string
  'Index Name'?: string
  'Index Cond'?: string
  Filter?: string
  'Join Filter'?: string
  Plans?: PlanNode[]
}

/**
 * Scans of the hub's tables that pick rows of one instance (or of a list of instances) by reading
 * more than that instance's rows: `instance_id` is tested after the scan instead of bounding it.
 */
function unboundedLookups(plan: PlanNode, joinFilter = ''): string[] {
  const found: string[] = []
  const table = plan['Relation Name']
  if (table?.startsWith('workflow_')) {
    const after = `${plan.Filter ?? ''} ${joinFilter}`
    if (after.includes('instance_id') && !(plan['Index Cond'] ?? '').includes('instance_id')) {
      found.push(`${plan['Node Type']} on ${table}${plan['Index Name'] ? ` using ${plan['Index Name']}` : ''}: ${after.trim()}`)
    }
  }
  for (const child of plan.Plans ?? []) found.push(...unboundedLookups(child, plan['Join Filter'] ?? ''))
  return found
}

async function genericPlan(name: string, text: string): Promise<PlanNode> {
  const params = Math.max(0, ...[...text.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])))
  await client.query(`prepare ${name} as ${text}`)
  try {
    const args = params > 0 ? `(${Array(params).fill('null').join(', ')})` : ''
    const { rows } = await client.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(`explain (format json) execute ${name}${args}`)
    return rows[0]!['QUERY PLAN'][0].Plan
  } finally {
    await client.query(`deallocate ${name}`)
  }
}

/** What PostgreSQL runs for each foreign key between the hub's tables: the parent check and the cascade. */
async function foreignKeyStatements(): Promise<Array<{ name: string; text: string }>> {
  const { rows } = await client.query<{ child: string; parent: string; keys: Array<[string, string, string]> }>(
    `select c.conrelid::regclass::text as child, c.confrelid::regclass::text as parent,
            array(select json_build_array(ca.attname, pa.attname, format_type(pa.atttypid, pa.atttypmod))
                    from unnest(c.conkey, c.confkey) with ordinality k(child_col, parent_col, o)
                    join pg_attribute ca on ca.attrelid = c.conrelid and ca.attnum = k.child_col
                    join pg_attribute pa on pa.attrelid = c.confrelid and pa.attnum = k.parent_col
                   order by k.o) as keys
       from pg_constraint c
      where c.contype = 'f' and c.conrelid::regclass::text like 'workflow\\_%'`,
  )
  return rows.flatMap((fk, i) => {
    const where = (side: 0 | 1) => fk.keys.map((key, n) => `${key[side]} = $${n + 1}::${key[2]}`).join(' and ')
    return [
      { name: `fk_check_${i}`, text: `select 1 from only ${fk.parent} x where ${where(1)} for key share of x` },
      { name: `fk_cascade_${i}`, text: `delete from only ${fk.child} where ${where(0)}` },
    ]
  })
}

describe('workflow hub plans on a new database', () => {
  it('find an instance by its own rows in every statement the hub prepares', async () => {
    const statements = declaredStatements().filter((s) => s.name.startsWith('modelplane_hub_'))
    // The hot paths the hub cannot run without: if one is renamed, this list says so.
    expect(statements.map((s) => s.name)).toEqual(
      expect.arrayContaining([
        'modelplane_hub_get_instance',
        'modelplane_hub_create_instance',
        'modelplane_hub_claim_instances',
        'modelplane_hub_complete_orchestration',
        'modelplane_hub_claim_activities',
        'modelplane_hub_complete_activity',
      ]),
    )
    const problems: string[] = []
    for (const [i, s] of statements.entries()) {
      for (const scan of unboundedLookups(await genericPlan(`hub_${i}`, s.text))) problems.push(`${s.name}: ${scan}`)
    }
    expect(problems).toEqual([])
  })

  it('find an instance by its own rows in the foreign-key checks and cascades between the hub tables', async () => {
    const statements = await foreignKeyStatements()
    // instances ← history, inbox, activity tasks: a check and a cascade each.
    expect(statements.length).toBeGreaterThanOrEqual(6)
    const problems: string[] = []
    for (const s of statements) {
      for (const scan of unboundedLookups(await genericPlan(s.name, s.text))) problems.push(`${s.text}: ${scan}`)
    }
    expect(problems).toEqual([])
  })

  it('reports the plans this file guards against: the index shape the hub had before', async () => {
    // workflow_instances was indexed on (hub, created_at) until migration 0009; put it back for a
    // moment and the generic plan of an instance lookup scans the hub through it.
    await client.query('create index plans_old_shape_idx on workflow_instances (hub, created_at)')
    try {
      const lookup = declaredStatements().find((s) => s.name === 'modelplane_hub_get_instance')!
      expect(unboundedLookups(await genericPlan('old_shape', lookup.text))).toEqual([
        expect.stringContaining('workflow_instances using plans_old_shape_idx'),
      ])
    } finally {
      await client.query('drop index plans_old_shape_idx')
    }
  })
})
