/** A node of `EXPLAIN (FORMAT JSON)` output. */
export type PlanNode = Record<string, unknown>

/** Every node of a plan, depth first; without subplans (the nodes PostgreSQL runs per row of another) when asked. */
export function nodesOf(plan: unknown, options: { subplans: boolean } = { subplans: true }): PlanNode[] {
  const found: PlanNode[] = []
  const walk = (node: PlanNode) => {
    if (!options.subplans && node['Parent Relationship'] === 'SubPlan') return
    found.push(node)
    for (const child of (node.Plans as PlanNode[] | undefined) ?? []) walk(child)
  }
  walk((plan as Array<{ Plan: PlanNode }>)[0]!.Plan)
  return found
}
