/**
 * Rules on an app's set of files that need no parser: how many, how large, which names. They run
 * before any file is parsed, so an oversized upload costs no parsing at all.
 */

export interface AppFile {
  /** Relative path inside the app's code folder, with `/` between folders. */
  path: string
  content: string
}

export type AppRule =
  | 'limit'
  | 'path'
  | 'file-type'
  | 'duplicate-path'
  | 'entry'
  | 'module-shadow'
  | 'syntax'
  | 'too-complex'
  | 'timeout'
  | 'fastapi-app'
  | 'import'
  | 'module-attribute'
  | 'forbidden-call'
  | 'forbidden-name'
  | 'forbidden-attribute'

/**
 * One thing wrong with the code. `file` is the path ('' when the problem is about the set of
 * files); `line` and `column` are 1-based (a column counts characters), and both are 0 when the
 * problem is about the file as a whole.
 */
export interface AppProblem {
  file: string
  line: number
  column: number
  rule: AppRule
  message: string
}

export const APP_FILE_LIMITS = Object.freeze({
  maxFiles: 50,
  maxFileBytes: 100 * 1024,
  maxTotalBytes: 500 * 1024,
  /** Folders above a file: `a/b/c/d/file.py` is as deep as it gets. */
  maxFolders: 4,
  maxPathLength: 200,
  maxSegmentLength: 100,
})

export const APP_FILE_EXTENSIONS: readonly string[] = Object.freeze(['.py', '.css', '.js', '.svg', '.html', '.json', '.txt'])

/** The file the runner imports when there are several. */
export const ENTRY_FILE = 'main.py'

/** Packages the runner image itself holds: a user file of the same name would hide them. */
export const RUNNER_PACKAGES: readonly string[] = Object.freeze([
  'fastapi',
  'starlette',
  'pydantic',
  'pydantic_core',
  'uvicorn',
  'anyio',
  'sniffio',
  'idna',
  'h11',
  'click',
  'typing_extensions',
  'annotated_types',
  'typing_inspection',
  'annotated_doc',
  'multipart',
  'python_multipart',
])

// No leading dot (hidden files, `.`, `..`), nothing but letters, digits, `_`, `-` and `.`.
const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/

export interface FileSetCheck {
  problems: AppProblem[]
  /** True when counts or sizes are over the limits: nothing should be parsed then. */
  overLimits: boolean
  /** The entry file's path, when one could be chosen. */
  entry?: string
  /** Python files whose paths are acceptable, in the order given. */
  python: AppFile[]
  /** Top-level module names the user's own Python files define (`utils.py` → utils, `pkg/x.py` → pkg). */
  localModules: string[]
}

const problem = (file: string, rule: AppRule, message: string): AppProblem => ({ file, line: 0, column: 0, rule, message })

function extensionOf(path: string): string {
  const name = path.slice(path.lastIndexOf('/') + 1)
  const dot = name.lastIndexOf('.')
  return dot > 0 ? name.slice(dot) : ''
}

/** What is wrong with one path, or undefined when it is a safe relative path. */
function pathProblem(path: string): string | undefined {
  if (path.length === 0) return 'the path is empty'
  if (path.length > APP_FILE_LIMITS.maxPathLength) return `the path is longer than ${APP_FILE_LIMITS.maxPathLength} characters`
  if (path.includes('\\')) return 'use "/" between folders, not "\\"'
  if (path.startsWith('/')) return 'the path must be relative to the app folder'
  const segments = path.split('/')
  if (segments.length - 1 > APP_FILE_LIMITS.maxFolders) return `files may be at most ${APP_FILE_LIMITS.maxFolders} folders deep`
  for (const segment of segments) {
    if (segment === '') return 'the path has an empty folder name'
    if (segment === '.' || segment === '..') return 'the path may not contain "." or ".." folders'
    if (segment.startsWith('.')) return 'hidden files and folders (starting with ".") are not allowed'
    if (segment.length > APP_FILE_LIMITS.maxSegmentLength) return `a file or folder name is longer than ${APP_FILE_LIMITS.maxSegmentLength} characters`
    if (!SEGMENT.test(segment)) return 'file and folder names may hold only letters, digits, "_", "-" and "."'
  }
  return undefined
}

/** `pkg/sub/mod.py` → `pkg.sub.mod`: what the runner imports for an entry file. */
export function entryModule(entry: string): string {
  return entry.slice(0, -'.py'.length).split('/').join('.')
}

export function checkFileSet(files: readonly AppFile[]): FileSetCheck {
  const problems: AppProblem[] = []
  const result: FileSetCheck = { problems, overLimits: false, python: [], localModules: [] }

  if (files.length === 0) {
    problems.push(problem('', 'limit', 'the app has no files'))
    result.overLimits = true
    return result
  }
  if (files.length > APP_FILE_LIMITS.maxFiles) {
    problems.push(problem('', 'limit', `an app may have at most ${APP_FILE_LIMITS.maxFiles} files (it has ${files.length})`))
    result.overLimits = true
    return result
  }

  let total = 0
  for (const file of files) {
    const bytes = Buffer.byteLength(file.content, 'utf8')
    total += bytes
    if (bytes > APP_FILE_LIMITS.maxFileBytes) {
      problems.push(problem(file.path, 'limit', `the file has ${bytes} bytes; a file may have at most ${APP_FILE_LIMITS.maxFileBytes}`))
      result.overLimits = true
    }
  }
  if (total > APP_FILE_LIMITS.maxTotalBytes) {
    problems.push(problem('', 'limit', `the files have ${total} bytes in all; an app may have at most ${APP_FILE_LIMITS.maxTotalBytes}`))
    result.overLimits = true
  }

  const seen = new Set<string>()
  const accepted: AppFile[] = []
  for (const file of files) {
    const wrong = pathProblem(file.path)
    if (wrong) {
      problems.push(problem(file.path, 'path', wrong))
      continue
    }
    if (seen.has(file.path)) {
      problems.push(problem(file.path, 'duplicate-path', 'two files have this path'))
      continue
    }
    seen.add(file.path)
    const extension = extensionOf(file.path)
    if (!APP_FILE_EXTENSIONS.includes(extension)) {
      problems.push(problem(file.path, 'file-type', `only ${APP_FILE_EXTENSIONS.join(', ')} files are accepted`))
      continue
    }
    if (extension === '.py') {
      const parts = file.path.slice(0, -3).split('/')
      if (!parts.every((part) => IDENTIFIER.test(part))) {
        problems.push(problem(file.path, 'path', 'a Python file and its folders need names Python can import: letters, digits and "_", not starting with a digit'))
        continue
      }
    }
    accepted.push(file)
  }

  // A folder and a file of the same path cannot both exist on disk.
  const acceptedPaths = new Set(accepted.map((file) => file.path))
  for (const file of accepted) {
    for (let cut = file.path.indexOf('/'); cut !== -1; cut = file.path.indexOf('/', cut + 1)) {
      const folder = file.path.slice(0, cut)
      if (acceptedPaths.has(folder)) problems.push(problem(folder, 'duplicate-path', `"${folder}" is both a file and the folder of ${file.path}`))
    }
  }

  result.python = accepted.filter((file) => file.path.endsWith('.py'))
  if (result.python.length === 0 && !files.some((file) => file.path.endsWith('.py'))) {
    problems.push(problem('', 'entry', 'the app has no Python file'))
  }
  const paths = new Set(result.python.map((file) => file.path))
  if (paths.has(ENTRY_FILE)) result.entry = ENTRY_FILE
  else if (result.python.length === 1) result.entry = result.python[0]!.path
  else if (result.python.length > 1) problems.push(problem('', 'entry', `an app of several Python files needs its entry file named ${ENTRY_FILE}`))

  result.localModules = [...new Set(result.python.map((file) => file.path.split('/')[0]!.replace(/\.py$/, '')))]
  return result
}

/**
 * A user module named like a module of the standard library or of the runner (`os.py`, `json/`)
 * is refused: it would make `import os` pass as the user's own module while the interpreter, which
 * loaded the real one first, hands out the real one.
 */
export function moduleShadowProblems(python: readonly AppFile[], reserved: ReadonlySet<string>): AppProblem[] {
  const problems: AppProblem[] = []
  const reported = new Set<string>()
  for (const file of python) {
    const name = file.path.split('/')[0]!.replace(/\.py$/, '')
    if (reserved.has(name) && !reported.has(name)) {
      reported.add(name)
      problems.push(problem(file.path, 'module-shadow', `"${name}" is the name of a module of Python or of the runner; rename the file or folder`))
    }
  }
  return problems
}
