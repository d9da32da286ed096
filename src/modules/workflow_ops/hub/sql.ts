import { statement as declare, type Statement } from '../../../platform/db/raw.js'

export { rawExecutor, type Raw, type Row, type Statement } from '../../../platform/db/raw.js'

/**
 * The hub's hot paths are plain SQL (platform/db/raw.ts): under load the builder and one round
 * trip per small statement were most of the process's CPU time (see bench/RESULTS.md); these
 * statements do each step in one round trip. Byte arrays in arrays travel as hex text and are
 * decoded by the server.
 */
export function statement(name: string, text: string): Statement {
  return declare(`modelplane_hub_${name}`, text)
}

/** `bytea[]` as both drivers send it: hex strings, decoded with `decode(x, 'hex')`. */
export function hexArray(values: Uint8Array[]): string[] {
  return values.map((v) => Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex'))
}
