/**
 * The permission catalog and what each seeded role is granted. The database holds the grants
 * (seeded from here at start, idempotently), so an operator may extend a role without a release;
 * this file is the floor every installation starts from.
 */
const RESOURCES = ['cluster', 'model', 'endpoint', 'user', 'workflow'] as const

export const PERMISSIONS = [
  ...RESOURCES.flatMap((r) => [`${r}:view`, `${r}:manage`] as const),
  'tenant:manage',
  'audit:view',
  'events:view',
  // A runtime image is code that runs on every cluster: admins only (super_admin and admin hold every permission).
  'runtime:manage',
] as const

export type Permission = (typeof PERMISSIONS)[number]

const ALL: readonly string[] = PERMISSIONS
/** What "sees everything" means for the working roles; the audit trail and the outbox are for admins. */
const VIEWS = RESOURCES.map((r) => `${r}:view`)

export const SEEDED_ROLES: Record<string, { description: string; permissions: readonly string[] }> = {
  super_admin: { description: 'Everything, across tenants when the user is a superuser', permissions: ALL },
  admin: { description: "Everything in the tenant except managing tenants", permissions: ALL.filter((p) => p !== 'tenant:manage') },
  developer: {
    description: 'Manages models and endpoints; sees the rest',
    permissions: [...VIEWS, 'model:manage', 'endpoint:manage'],
  },
  devops: {
    description: 'Manages clusters and endpoints; sees the rest',
    permissions: [...VIEWS, 'cluster:manage', 'endpoint:manage'],
  },
  tester: {
    description: 'Sees endpoints, models, clusters and workflows',
    permissions: ['endpoint:view', 'model:view', 'cluster:view', 'workflow:view'],
  },
  viewer: { description: 'Sees everything, changes nothing', permissions: VIEWS },
}

/** Most to least powerful: a token with several known roles acts with the first of these it has. */
export const ROLE_RANK = ['super_admin', 'admin', 'devops', 'developer', 'tester', 'viewer'] as const

export function isPermission(value: string): value is Permission {
  return ALL.includes(value)
}

/** The strongest seeded role among a token's roles, or undefined when it has none of them. */
export function strongestRole(tokenRoles: readonly string[]): string | undefined {
  return ROLE_RANK.find((role) => tokenRoles.includes(role))
}
