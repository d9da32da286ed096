// `npm start`: rebuild dist/ from src/ (a fraction of a second with esbuild) and run the server in
// this same process, so signals from a supervisor reach it directly and the code is never stale.
import { buildDist } from './build.mjs'

process.setSourceMapsEnabled(true)
await buildDist()
await import('../dist/server.js')
