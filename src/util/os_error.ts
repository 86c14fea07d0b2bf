/**
 * Operating-system errors a user can meet (a full disk, a name too long, no
 * permission) told apart from bugs: each known `errno` code gets a plain
 * description, so it is reported as one line, not as an internal error.
 *
 * @module
 */
import { DeltashipError, FileSystemError } from "../errors.ts";

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
  const detail = osDetail(err);
  return detail ? `${osCondition(code)}: ${detail}` : osCondition(code);
}

/** The operation and paths Deno names in an OS error's message (`write '/x'`), if any. */
function osDetail(err: unknown): string | undefined {
  return /\(os error \d+\)(?::\s*(.*))?$/s.exec((err as Error).message)?.[1];
}

/**
 * A known operating-system error as a {@link FileSystemError} naming `path`:
 * `${doing}: ${condition}` (and the operation Deno named, if any), where
 * `doing` says what was done to which path (default `cannot write PATH`). A
 * failed write or sync names no path of its own, so whoever knows which file
 * or directory was being written names it here. Our own errors, and errors
 * that are not known OS conditions, come back unchanged.
 */
export function osErrorAt(err: unknown, path: string, doing = `cannot write ${path}`): unknown {
  if (err instanceof DeltashipError) return err;
  const code = knownOsCode(err);
  if (code === undefined) return err;
  const detail = osDetail(err);
  return new FileSystemError(`${doing}: ${osCondition(code)}${detail ? ` (${detail})` : ""}`, path, code, {
    cause: err,
  });
}
