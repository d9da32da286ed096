// `npm start`: rebuild dist/ from src/ (a fraction of a second with esbuild) and run the server in
// this same process, so signals from a supervisor reach it directly and the code is never stale.
// A .env file in the project folder, when present, fills in variables the environment does not set.
import fs from 'node:fs'
import { buildDist } from './build.mjs'

if (fs.existsSync('.env')) process.loadEnvFile('.env')
process.setSourceMapsEnabled(true)
await buildDist()
await import('../dist/server.js')
