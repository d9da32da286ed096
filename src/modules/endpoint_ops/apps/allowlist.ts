/**
 * The modules a user's app may import. An entry names one module exactly (`urllib.parse` allows
 * `urllib.parse`, not `urllib` nor `urllib.request`); an entry ending in `.*` allows the package
 * and every module below it (`starlette.*`). `from M import n` is allowed when `M` or `M.n` is.
 *
 * This is where an admin-edited list starts from. Left out on purpose: modules that reach the
 * file system, processes, the network or the interpreter (`os`, `sys`, `subprocess`, `socket`,
 * `importlib`, `builtins`, `types`, `inspect`, `pathlib`, `io`, `pickle`, `ctypes`), and
 * `logging`, whose `logging.config` (loaded by the runner's server) can listen on a socket and
 * build arbitrary objects from the configuration it receives: apps write logs with `print`.
 */
export const DEFAULT_ALLOWED_IMPORTS: readonly string[] = Object.freeze([
  // the web framework and what it is built on
  'fastapi.*',
  'starlette.*',
  'pydantic.*',
  'typing',
  'typing_extensions',
  'annotated_types',
  // data and text
  'json',
  're',
  'string',
  'textwrap',
  'html',
  'base64',
  'uuid',
  'hashlib',
  'hmac',
  'secrets',
  'urllib.parse',
  'unicodedata',
  'difflib',
  'pprint',
  // numbers and time
  'math',
  'cmath',
  'random',
  'statistics',
  'decimal',
  'fractions',
  'numbers',
  'datetime',
  'time',
  'zoneinfo',
  'calendar',
  // structures and functions
  'collections.*',
  'itertools',
  'functools',
  'operator',
  'enum',
  'dataclasses',
  'abc',
  'copy',
  'bisect',
  'heapq',
  'contextlib',
  'contextvars',
  'ipaddress',
  // concurrency within the process (starting processes is refused by the call rules)
  'asyncio',
  // status codes (HTTPStatus); http.client and http.server are other modules
  'http',
])

const MODULE = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*(\.\*)?$/

/** True for an entry the validator understands: a dotted module name, optionally ending in `.*`. */
export function isAllowListEntry(entry: string): boolean {
  return entry.length <= 200 && MODULE.test(entry)
}
