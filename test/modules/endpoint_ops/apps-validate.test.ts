import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AppError } from '../../../src/platform/errors.js'
import {
  APP_FILE_LIMITS,
  CodeInvalidError,
  DEFAULT_ALLOWED_IMPORTS,
  appFilesFromCode,
  createAppValidator,
  entryModule,
  requireValidApp,
  type AppFile,
  type AppProblem,
  type AppValidation,
  type AppValidator,
} from '../../../src/modules/endpoint_ops/apps/validate.js'

const CORPUS = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/apps/corpus')

interface CorpusCase {
  verdict: 'valid' | 'invalid'
  problems?: string[]
  path?: string
  entry?: string
}
const manifest = JSON.parse(fs.readFileSync(path.join(CORPUS, 'manifest.json'), 'utf8')) as { cases: Record<string, CorpusCase> }

function corpusFiles(name: string, single: CorpusCase): AppFile[] {
  const full = path.join(CORPUS, name)
  if (!fs.statSync(full).isDirectory()) return [{ path: single.path ?? 'main.py', content: fs.readFileSync(full, 'utf8') }]
  return fs
    .readdirSync(full, { recursive: true })
    .map(String)
    .filter((file) => fs.statSync(path.join(full, file)).isFile())
    .sort()
    .map((file) => ({ path: file.split(path.sep).join('/'), content: fs.readFileSync(path.join(full, file), 'utf8') }))
}

const brief = (problems: AppProblem[]) => problems.map((p) => `${p.file}:${p.line}:${p.column} ${p.rule}`)

function problemsOf(result: AppValidation): AppProblem[] {
  if (result.ok) throw new Error('expected problems, the code passed')
  return result.problems
}

const app = (body: string) => `from fastapi import FastAPI\n\napp = FastAPI()\n${body}`

/** About 100 KB of ordinary routes. */
function bigModule(bytes = 100 * 1024 - 200): string {
  let source = app('')
  for (let i = 0; ; i++) {
    const route = `\n@app.get("/items/${i}")\nasync def item_${i}(q: str | None = None, limit: int = 10):\n    return {"i": ${i}, "q": q, "v": [x * 2 for x in range(limit) if x % 3]}\n`
    if (source.length + route.length > bytes) return source
    source += route
  }
}

let validator: AppValidator

beforeAll(async () => {
  validator = createAppValidator()
  await validator.warm()
}, 120_000)

afterAll(async () => {
  await validator?.close()
})

describe('the corpus: real programs, valid and invalid', () => {
  it('holds at least 40 programs, each with a verdict, and every program on disk is in the manifest', () => {
    const onDisk = fs.readdirSync(CORPUS).filter((name) => name !== 'manifest.json')
    expect(onDisk.length).toBeGreaterThanOrEqual(40)
    expect(Object.keys(manifest.cases).sort()).toEqual(onDisk.sort())
    const valid = Object.values(manifest.cases).filter((c) => c.verdict === 'valid').length
    expect(valid).toBeGreaterThanOrEqual(15)
    expect(onDisk.length - valid).toBeGreaterThanOrEqual(25)
  })

  for (const [name, expected] of Object.entries(manifest.cases)) {
    it(`${name} is ${expected.verdict}`, async () => {
      const result = await validator.validate(corpusFiles(name, expected), DEFAULT_ALLOWED_IMPORTS)
      if (expected.verdict === 'valid') {
        expect(result.ok ? [] : brief(result.problems)).toEqual([])
        expect(result.ok && result.entry).toBe(expected.entry ?? 'main.py')
      } else {
        expect(brief(problemsOf(result))).toEqual(expected.problems)
      }
    }, 30_000)
  }
})

describe('what a user reads in a problem', () => {
  it('names the file, the rule and the offending name, and reports every problem of the file at once', async () => {
    const problems = problemsOf(
      await validator.validate(appFilesFromCode(app('import os\nx = eval("1")\ny = open("f")\n')), DEFAULT_ALLOWED_IMPORTS),
    )
    expect(problems).toEqual([
      { file: 'main.py', line: 4, column: 8, rule: 'import', message: 'import of "os" is not allowed (not on the allow-list)' },
      { file: 'main.py', line: 5, column: 5, rule: 'forbidden-call', message: 'calling the builtin "eval" is not allowed' },
      { file: 'main.py', line: 6, column: 5, rule: 'forbidden-call', message: 'calling the builtin "open" is not allowed' },
    ])
  })

  it('gives syntax errors the line and column CPython gives them', async () => {
    const problems = problemsOf(await validator.validate(appFilesFromCode(app('def f(:\n    pass\n')), DEFAULT_ALLOWED_IMPORTS))
    expect(problems).toEqual([{ file: 'main.py', line: 4, column: 7, rule: 'syntax', message: 'invalid syntax' }])
  })

  it('points at a NUL character instead of failing without a position', async () => {
    const problems = problemsOf(await validator.validate(appFilesFromCode(app('x = 1\ny = "a\0b"\n')), DEFAULT_ALLOWED_IMPORTS))
    expect(brief(problems)).toEqual(['main.py:5:7 syntax'])
  })

  it('becomes a 400 CODE_INVALID error carrying every problem for a route to throw', async () => {
    const result = await validator.validate(appFilesFromCode(app('eval("1")\nexec("2")\n')), DEFAULT_ALLOWED_IMPORTS)
    let thrown: unknown
    try {
      requireValidApp(result, 'body.code')
    } catch (err) {
      thrown = err
    }
    expect(thrown).toBeInstanceOf(CodeInvalidError)
    const error = thrown as AppError
    expect(error).toBeInstanceOf(AppError)
    expect(error.status).toBe(400)
    expect(error.code).toBe('CODE_INVALID')
    expect(error.message).toBe('the app\'s code has 2 problems; the first: main.py:4:1: calling the builtin "eval" is not allowed')
    expect(error.details.problems).toEqual(problemsOf(result))
    expect(error.details.fields).toEqual([
      { field: 'body.code', message: 'main.py:4:1 [forbidden-call] calling the builtin "eval" is not allowed' },
      { field: 'body.code', message: 'main.py:5:1 [forbidden-call] calling the builtin "exec" is not allowed' },
    ])
  })

  it('hands back the files and the entry of valid code, and the module the runner imports', async () => {
    const files = [
      { path: 'web/app.py', content: app('') },
      { path: 'web/static/site.css', content: 'body{}' },
    ]
    const valid = requireValidApp(await validator.validate(files, DEFAULT_ALLOWED_IMPORTS))
    expect(valid).toEqual({ entry: 'web/app.py', files })
    expect(entryModule(valid.entry)).toBe('web.app')
  })

  it('lists at most 100 problems of one file and says that there were more', async () => {
    const problems = problemsOf(await validator.validate(appFilesFromCode(app('eval("1")\n'.repeat(150))), DEFAULT_ALLOWED_IMPORTS))
    expect(problems).toHaveLength(101)
    expect(problems.filter((p) => p.rule === 'forbidden-call')).toHaveLength(100)
    expect(problems.at(-1)).toMatchObject({ rule: 'limit', line: 0 })
  })
})

describe('the allow-list is the caller\'s', () => {
  it('refuses a module the list does not name and accepts it once the list names it', async () => {
    const files = appFilesFromCode(app('import numpy as np\nfrom yaml import safe_load\n'))
    expect(brief(problemsOf(await validator.validate(files, DEFAULT_ALLOWED_IMPORTS)))).toEqual(['main.py:4:8 import', 'main.py:5:18 import'])
    const result = await validator.validate(files, [...DEFAULT_ALLOWED_IMPORTS, 'numpy', 'yaml'])
    expect(result.ok).toBe(true)
  })

  it('checks the dotted name as a whole: an exact entry allows neither its parent nor its siblings nor its children', async () => {
    const allowed = ['fastapi.*', 'urllib.parse']
    const code = app('import urllib\nimport urllib.request\nimport urllib.parse.x\nfrom urllib import parse\nfrom urllib import request\n')
    expect(brief(problemsOf(await validator.validate(appFilesFromCode(code), allowed)))).toEqual([
      'main.py:4:8 import',
      'main.py:5:8 import',
      'main.py:6:8 import',
      'main.py:8:20 import',
    ])
  })

  it('lets an entry ending in .* allow the package and everything below it', async () => {
    const code = app('import collections\nfrom collections.abc import Mapping\nimport collections.abc\n')
    expect((await validator.validate(appFilesFromCode(code), ['fastapi.*', 'collections.*'])).ok).toBe(true)
    expect(brief(problemsOf(await validator.validate(appFilesFromCode(code), ['fastapi.*', 'collections'])))).toEqual([
      'main.py:5:29 import',
      'main.py:6:8 import',
    ])
  })

  it('starts from a default list holding what the product promises', () => {
    for (const name of ['typing', 'datetime', 'json', 'math', 'random', 'string', 'itertools', 'functools', 'operator', 're', 'uuid', 'hashlib', 'base64', 'urllib.parse']) {
      expect(DEFAULT_ALLOWED_IMPORTS).toContain(name)
    }
    for (const name of ['fastapi.*', 'pydantic.*', 'starlette.*', 'collections.*']) expect(DEFAULT_ALLOWED_IMPORTS).toContain(name)
    for (const name of ['os', 'sys', 'subprocess', 'importlib', 'builtins', 'socket', 'urllib', 'urllib.*']) expect(DEFAULT_ALLOWED_IMPORTS).not.toContain(name)
    expect(Object.isFrozen(DEFAULT_ALLOWED_IMPORTS)).toBe(true)
  })

  it('refuses an allow-list entry it cannot read rather than guessing', async () => {
    await expect(validator.validate(appFilesFromCode(app('')), ['fastapi.*', 'os; rm'])).rejects.toThrow(/not an allow-list entry/)
  })
})

describe('limits and paths, checked before anything is parsed', () => {
  const py = (p: string, content = 'x = 1\n'): AppFile => ({ path: p, content })
  const main = py('main.py', app(''))

  it(`refuses more than ${APP_FILE_LIMITS.maxFiles} files`, async () => {
    const files = [main, ...Array.from({ length: APP_FILE_LIMITS.maxFiles }, (_, i) => py(`m${i}.py`))]
    expect(problemsOf(await validator.validate(files, DEFAULT_ALLOWED_IMPORTS))).toEqual([
      { file: '', line: 0, column: 0, rule: 'limit', message: 'an app may have at most 50 files (it has 51)' },
    ])
    const fifty = [main, ...Array.from({ length: APP_FILE_LIMITS.maxFiles - 1 }, (_, i) => py(`m${i}.py`))]
    expect((await validator.validate(fifty, DEFAULT_ALLOWED_IMPORTS)).ok).toBe(true)
  }, 60_000)

  it('refuses a file over 100 KB (counted in UTF-8 bytes) and apps over 500 KB in all', async () => {
    // 40,000 two-byte characters: 80,000 bytes, well under the limit; 60,000 of them are over it.
    const under = [py('main.py', app(`TEXT = "${'é'.repeat(40_000)}"\n`))]
    expect((await validator.validate(under, DEFAULT_ALLOWED_IMPORTS)).ok).toBe(true)
    const over = [py('main.py', app(`TEXT = "${'é'.repeat(60_000)}"\n`))]
    expect(brief(problemsOf(await validator.validate(over, DEFAULT_ALLOWED_IMPORTS)))).toEqual(['main.py:0:0 limit'])

    const big = 'x'.repeat(90 * 1024)
    const six = [main, ...Array.from({ length: 6 }, (_, i) => ({ path: `static/f${i}.txt`, content: big }))]
    expect(problemsOf(await validator.validate(six, DEFAULT_ALLOWED_IMPORTS))).toEqual([
      expect.objectContaining({ file: '', rule: 'limit', message: expect.stringMatching(/at most 512000$/) }),
    ])
  })

  it('refuses unsafe, hidden, duplicate and unknown paths, each with its reason, and still checks the rest', async () => {
    const files = [
      py('main.py', app('eval("1")\n')),
      py('../escape.py'),
      py('/etc/abs.py'),
      py('.hidden.py'),
      py('static/.env.txt'),
      py('a\\b.py'),
      py('a//b.py'),
      py('a/b/c/d/e/deep.py'),
      py('a/b/c/d/ok.py'),
      py('main.py'),
      py('run.sh'),
      py('my-app.py'),
      py('2fast.py'),
      py('static'),
      py('static/site.css', 'body{}'),
    ]
    const problems = problemsOf(await validator.validate(files, DEFAULT_ALLOWED_IMPORTS))
    expect(brief(problems)).toEqual([
      '../escape.py:0:0 path',
      '/etc/abs.py:0:0 path',
      '.hidden.py:0:0 path',
      'static/.env.txt:0:0 path',
      'a\\b.py:0:0 path',
      'a//b.py:0:0 path',
      'a/b/c/d/e/deep.py:0:0 path',
      'main.py:0:0 duplicate-path',
      'run.sh:0:0 file-type',
      'my-app.py:0:0 path',
      '2fast.py:0:0 path',
      'static:0:0 file-type',
      'main.py:4:1 forbidden-call',
    ])
    expect(problems.find((p) => p.file === '../escape.py')?.message).toBe('the path may not contain "." or ".." folders')
    expect(problems.find((p) => p.file === '/etc/abs.py')?.message).toBe('the path must be relative to the app folder')
    expect(problems.find((p) => p.file === 'a/b/c/d/e/deep.py')?.message).toBe('files may be at most 4 folders deep')
  })

  it('refuses a file and a folder of the same path', async () => {
    const files = [main, { path: 'data.txt', content: '' }, { path: 'data.txt/inner.txt', content: '' }]
    expect(brief(problemsOf(await validator.validate(files, DEFAULT_ALLOWED_IMPORTS)))).toEqual(['data.txt:0:0 duplicate-path'])
  })

  it('refuses an app without files or without Python', async () => {
    expect(brief(problemsOf(await validator.validate([], DEFAULT_ALLOWED_IMPORTS)))).toEqual([':0:0 limit'])
    expect(brief(problemsOf(await validator.validate([{ path: 'index.html', content: '<p>' }], DEFAULT_ALLOWED_IMPORTS)))).toEqual([
      ':0:0 entry',
    ])
  })
})

describe('pathological input neither hangs nor crashes the process', () => {
  it('answers a clean syntax error for brackets nested past the parser\'s limit', async () => {
    const problems = problemsOf(await validator.validate(appFilesFromCode('('.repeat(50_000) + ')'.repeat(50_000)), DEFAULT_ALLOWED_IMPORTS))
    expect(problems).toEqual([{ file: 'main.py', line: 1, column: 201, rule: 'syntax', message: 'too many nested parentheses' }])
  })

  it('answers "too complex" for unary operators nested 100,000 deep, and keeps working', async () => {
    const problems = problemsOf(await validator.validate(appFilesFromCode(app(`x = ${'-'.repeat(99_000)}1\n`)), DEFAULT_ALLOWED_IMPORTS))
    expect(brief(problems)).toEqual(['main.py:0:0 too-complex'])
    expect((await validator.validate(appFilesFromCode(app('')), DEFAULT_ALLOWED_IMPORTS)).ok).toBe(true)
  })

  it('walks a 50,000-deep expression the parser accepts without exhausting Python\'s recursion', async () => {
    const deep = app(`x = ${'1 + '.repeat(24_000)}eval("1")\n`)
    expect(brief(problemsOf(await validator.validate(appFilesFromCode(deep), DEFAULT_ALLOWED_IMPORTS)))).toEqual(['main.py:4:96005 forbidden-call'])
  }, 60_000)

  it('keeps the event loop free while it parses 500 KB', async () => {
    const files = [{ path: 'main.py', content: bigModule() }, ...[1, 2, 3, 4].map((i) => ({ path: `m${i}.py`, content: bigModule() }))]
    let longest = 0
    let last = performance.now()
    const ticker = setInterval(() => {
      const now = performance.now()
      longest = Math.max(longest, now - last)
      last = now
    }, 5)
    const started = performance.now()
    const result = await validator.validate(files, DEFAULT_ALLOWED_IMPORTS)
    const took = performance.now() - started
    clearInterval(ticker)
    expect(result.ok).toBe(true)
    // Parsed on this thread, one 100 KB file alone would hold the loop for ~100 ms on an idle core.
    expect(longest).toBeLessThan(Math.max(100, took / 5))
  }, 60_000)
})

describe('a checker thread that fails is replaced', () => {
  it('reports a file that runs past its time and serves the next request', async () => {
    const impatient = createAppValidator({ fileTimeoutMs: 60 })
    try {
      await impatient.warm()
      // A 24,000-deep sum takes the checker several tenths of a second.
      const slow = appFilesFromCode(app(`x = ${'1 + '.repeat(24_000)}1\n`))
      const problems = problemsOf(await impatient.validate(slow, DEFAULT_ALLOWED_IMPORTS))
      expect(problems).toEqual([{ file: 'main.py', line: 0, column: 0, rule: 'timeout', message: 'checking this file took too long' }])
      expect(await impatient.validate(appFilesFromCode(app('')), DEFAULT_ALLOWED_IMPORTS)).toMatchObject({ ok: true })
    } finally {
      await impatient.close()
    }
  }, 120_000)

  it('reports "too complex" when the interpreter dies of a stack overflow, and starts a new one', async () => {
    // A thread with a small stack dies (pyodide's fatal error) on what the normal one parses.
    const small = createAppValidator({ checker: { stackSizeMb: 2 } })
    try {
      const deep = appFilesFromCode(app(`x = ${'1 + '.repeat(24_000)}1\n`))
      expect(brief(problemsOf(await small.validate(deep, DEFAULT_ALLOWED_IMPORTS)))).toEqual(['main.py:0:0 too-complex'])
      expect(brief(problemsOf(await small.validate(appFilesFromCode(app('eval("1")\n')), DEFAULT_ALLOWED_IMPORTS)))).toEqual([
        'main.py:4:1 forbidden-call',
      ])
    } finally {
      await small.close()
    }
  }, 120_000)

  it('does not count time spent waiting behind another app against an app: queued valid code passes', async () => {
    // An app's files get 150 ms of the thread in all; the app ahead holds the thread longer than that.
    const strict = createAppValidator({ totalTimeoutMs: 150, fileTimeoutMs: 150 })
    try {
      await strict.warm()
      const slow = strict.validate(appFilesFromCode(app(`x = ${'1 + '.repeat(24_000)}1\n`)), DEFAULT_ALLOWED_IMPORTS)
      const files: AppFile[] = [
        { path: 'main.py', content: app('from helpers import greet\nfrom texts import WORD\n') },
        { path: 'helpers.py', content: 'def greet(name: str) -> str:\n    return "hello " + name\n' },
        { path: 'texts.py', content: 'WORD = "world"\n' },
      ]
      const queued = strict.validate(files, DEFAULT_ALLOWED_IMPORTS)
      // The app ahead ran out of its own time: the thread was busy with it past the queued app's whole allowance.
      expect(brief(problemsOf(await slow))).toEqual(['main.py:0:0 timeout'])
      expect(await queued).toMatchObject({ ok: true, entry: 'main.py' })
    } finally {
      await strict.close()
    }
  }, 120_000)

  it('tells a caller that waited too long behind another app to come back, and still serves the next one', async () => {
    const hurried = createAppValidator({ checker: { maxQueueWaitMs: 50 } })
    try {
      await hurried.warm()
      // Several tenths of a second of the thread's time, against a wait of 50 ms.
      const slow = hurried.validate(appFilesFromCode(app(`x = ${'1 + '.repeat(24_000)}1\n`)), DEFAULT_ALLOWED_IMPORTS)
      await expect(hurried.validate(appFilesFromCode(app('')), DEFAULT_ALLOWED_IMPORTS)).rejects.toMatchObject({ code: 'APP_VALIDATOR_BUSY', status: 503 })
      expect((await slow).ok).toBe(true)
      expect(await hurried.validate(appFilesFromCode(app('')), DEFAULT_ALLOWED_IMPORTS)).toMatchObject({ ok: true })
    } finally {
      await hurried.close()
    }
  }, 120_000)

  it('tells the caller to come back when too many files wait', async () => {
    const busy = createAppValidator({ checker: { maxQueued: 1 } })
    try {
      await busy.warm()
      const first = busy.validate(appFilesFromCode(bigModule()), DEFAULT_ALLOWED_IMPORTS)
      await expect(busy.validate(appFilesFromCode(app('')), DEFAULT_ALLOWED_IMPORTS)).rejects.toMatchObject({
        code: 'APP_VALIDATOR_BUSY',
        status: 503,
        details: { retryAfterSeconds: 5 },
      })
      expect((await first).ok).toBe(true)
    } finally {
      await busy.close()
    }
  }, 120_000)
})
