/**
 * Where a version's files live in the blob store, and which file paths a version may hold. A path
 * comes from a hub listing or an uploader, so it is checked before it becomes part of a key: a
 * relative path of blob-key characters, no `.` or `..` segment, bounded in length and depth.
 */
export const MAX_FILE_PATH_LENGTH = 512
export const MAX_FILE_PATH_DEPTH = 16
export const MAX_FILES_PER_VERSION = 10_000

const SEGMENT = /^[A-Za-z0-9._-]+$/

/** Why `path` cannot be a file of a version, or null when it can. */
export function filePathProblem(path: string): string | null {
  if (path.length === 0 || path.length > MAX_FILE_PATH_LENGTH) return `a file path is 1 to ${MAX_FILE_PATH_LENGTH} characters`
  if (path.startsWith('/') || /^[A-Za-z]:/.test(path)) return 'a file path is relative'
  const segments = path.split('/')
  if (segments.length > MAX_FILE_PATH_DEPTH) return `a file path is at most ${MAX_FILE_PATH_DEPTH} folders deep`
  for (const segment of segments) {
    if (segment === '' ) return 'a file path has no empty segment (no // and no trailing /)'
    if (segment === '.' || segment === '..') return 'a file path may not contain "." or ".." segments'
    if (!SEGMENT.test(segment)) return 'a file path is letters, digits, ".", "_" and "-" in segments joined by "/"'
  }
  return null
}

export const versionPrefix = (modelId: string, versionId: string) => `models/${modelId}/${versionId}/`

export const blobKeyOf = (modelId: string, versionId: string, path: string) => `${versionPrefix(modelId, versionId)}${path}`
