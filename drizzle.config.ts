import { defineConfig } from 'drizzle-kit'

// Every module's tables.ts plus the platform's own tables feed one migration history.
// The same SQL runs on PostgreSQL and on PGlite.
export default defineConfig({
  dialect: 'postgresql',
  schema: ['./src/platform/**/tables.ts', './src/modules/*/tables.ts', './src/modules/*/runtime-tables.ts', './src/modules/*/app-tables.ts'],
  out: './drizzle',
  strict: true,
  verbose: true,
})
