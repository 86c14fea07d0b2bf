/**
 * File-system calls on paths given as bytes, through the C library: Deno's own
 * calls take strings and encode them as UTF-8, so a name that is not UTF-8
 * cannot be made with them. Renaming to such a name, a symlink whose target is
 * not UTF-8, and the times of a path that is not, are made here.
 *
 * @module
 */
import { errnoOf, openLibc, PosixError } from "./posix.ts";

const SYMBOLS = {
  rename: { parameters: ["buffer", "buffer"], result: "i32" },
  symlink: { parameters: ["buffer", "buffer"], result: "i32" },
  utimensat: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

const AT_FDCWD = -100;
const AT_SYMLINK_NOFOLLOW = 0x100;

/** Calls on byte paths (each without its terminating NUL). */
export interface BytePaths {
  rename(from: Uint8Array, to: Uint8Array): void;
  /** Makes a symlink at `path` to `target`. */
  symlink(target: Uint8Array, path: Uint8Array): void;
  /** Sets the access and modification times of `path` (not following a symlink) to `seconds` (fractional). */
  setTimes(path: Uint8Array, seconds: number): void;
  close(): void;
}

function cBytes(path: Uint8Array): Uint8Array {
  const out = new Uint8Array(path.length + 1);
  out.set(path);
  return out;
}

const dec = new TextDecoder();

/** The C library's calls on byte paths, or undefined where FFI cannot be used here. */
export function openBytePaths(): BytePaths | undefined {
  const lib = openLibc(SYMBOLS);
  if (!lib) return undefined;
  const errno = errnoOf(lib);
  const fail = (what: string, path: Uint8Array) => new PosixError(`${what} ${dec.decode(path)}`, errno());
  return {
    rename(from, to) {
      if (lib.symbols.rename(cBytes(from), cBytes(to)) !== 0) throw fail("rename", to);
    },
    symlink(target, path) {
      if (lib.symbols.symlink(cBytes(target), cBytes(path)) !== 0) throw fail("symlink", path);
    },
    setTimes(path, seconds) {
      // As libuv converts a time in seconds: whole seconds, and the fraction's nanoseconds truncated.
      const sec = Math.trunc(seconds);
      const nsec = Math.trunc((seconds - sec) * 1e9);
      const times = new BigInt64Array([BigInt(sec), BigInt(nsec), BigInt(sec), BigInt(nsec)]);
      const buf = new Uint8Array(times.buffer);
      if (lib.symbols.utimensat(AT_FDCWD, cBytes(path), buf, AT_SYMLINK_NOFOLLOW) !== 0) throw fail("utimensat", path);
    },
    close: () => lib.close(),
  };
}
