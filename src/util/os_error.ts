/**
 * Operating-system errors a user can meet (a full disk, a name too long, no
 * permission) told apart from bugs: each known `errno` code gets a plain
 * description, so it is reported as one line, not as an internal error.
 *
 * @module
 */

/** What each known error code means, in the words a user needs. */
const CONDITIONS: Record<string, string> = {
  ENOSPC: "no space left on device",
  EDQUOT: "disk quota exceeded",
  EFBIG: "file too large for the filesystem",
  ENAMETOOLONG: "file name too long",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EROFS: "read-only file system",
  ENOTDIR: "not a directory",
  EISDIR: "is a directory",
  ELOOP: "too many levels of symbolic links",
  EMFILE: "too many open files (raise the limit with ulimit -n, or lower --jobs)",
  ENFILE: "too many open files in the system",
  EEXIST: "file exists",
  ENOTEMPTY: "directory not empty",
  EXDEV: "not on the same filesystem",
  EMLINK: "too many links",
  ENOENT: "no such file or directory",
  EBUSY: "device or resource busy",
  ETXTBSY: "text file busy",
  EIO: "input/output error",
};

/** The `errno` code (`ENOSPC`, ...) of an operating-system error deltaship knows how to describe. */
export function knownOsCode(err: unknown): string | undefined {
  const code = err instanceof Error ? (err as { code?: unknown }).code : undefined;
  return typeof code === "string" && code in CONDITIONS ? code : undefined;
}

/** The plain description of a known error code (see {@link knownOsCode}). */
export function osCondition(code: string): string {
  return CONDITIONS[code] ?? code;
}

/**
 * A one-line description of a known operating-system error: the condition,
 * then the operation and paths Deno names (`no space left on device: write
 * '/x'`). Undefined for anything else.
 */
export function describeOsError(err: unknown): string | undefined {
  const code = knownOsCode(err);
  if (code === undefined) return undefined;
  const detail = /\(os error \d+\)(?::\s*(.*))?$/s.exec((err as Error).message)?.[1];
  return detail ? `${osCondition(code)}: ${detail}` : osCondition(code);
}
