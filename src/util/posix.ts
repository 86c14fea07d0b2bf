/**
 * The few POSIX calls a checkout needs that Deno has no API for (`mknod` for
 * device nodes and fifos, `lsetxattr` for extended attributes), made through
 * FFI into the C library. Linux only: elsewhere, or without FFI permission,
 * {@link openPosix} returns undefined and callers report what they could not do.
 *
 * @module
 */

/** A failed call, with the C library's error number. */
export class PosixError extends Error {
  override name = "PosixError";
  constructor(readonly call: string, readonly errno: number) {
    super(`${call}: ${ERRNO_NAMES[errno] ?? `errno ${errno}`}`);
  }
}

const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM (operation not permitted)",
  2: "ENOENT (no such file or directory)",
  13: "EACCES (permission denied)",
  17: "EEXIST (file exists)",
  22: "EINVAL (invalid argument)",
  28: "ENOSPC (no space left on device)",
  95: "EOPNOTSUPP (not supported by the filesystem)",
};

/** File type bits for mknod. */
export const S_IFIFO = 0o010000;
/** Character device. */
export const S_IFCHR = 0o020000;
/** Block device. */
export const S_IFBLK = 0o060000;

/** The calls available. */
export interface Posix {
  /** Creates a device node or fifo (`type` is one of the S_IF* bits). */
  mknod(path: string, type: number, mode: number, major: number, minor: number): void;
  /** Sets an extended attribute on `path` itself (symlinks not followed). */
  lsetxattr(path: string, name: string, value: Uint8Array): void;
  /** Releases the library. */
  close(): void;
}

const SYMBOLS = {
  mknod: { parameters: ["buffer", "u32", "u64"], result: "i32" },
  lsetxattr: { parameters: ["buffer", "buffer", "buffer", "usize", "i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

const enc = new TextEncoder();
const cString = (s: string) => enc.encode(s + "\0");

/** Linux's makedev(3). */
function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) | (mi & 0xffn);
}

/** Opens the C library, or undefined when it cannot be used here. */
export function openPosix(): Posix | undefined {
  if (Deno.build.os !== "linux") return undefined;
  try {
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return undefined;
    const lib = Deno.dlopen("libc.so.6", SYMBOLS);
    const errno = () => {
      const p = lib.symbols.__errno_location();
      return p ? new Deno.UnsafePointerView(p).getInt32() : 0;
    };
    return {
      mknod(path, type, mode, major, minor) {
        if (lib.symbols.mknod(cString(path), type | (mode & 0o7777), makedev(major, minor)) !== 0) {
          throw new PosixError(`mknod ${path}`, errno());
        }
      },
      lsetxattr(path, name, value) {
        if (lib.symbols.lsetxattr(cString(path), cString(name), value, BigInt(value.length), 0) !== 0) {
          throw new PosixError(`lsetxattr ${path} ${name}`, errno());
        }
      },
      close: () => lib.close(),
    };
  } catch {
    return undefined;
  }
}

/** A handle on one filesystem whose pending writes can be flushed with `syncfs(2)`. */
export interface FilesystemSync {
  /** Flushes every file's data and metadata on the filesystem to stable storage. */
  sync(): Promise<void>;
  /** Releases the directory descriptor. */
  close(): void;
}

const SYNC_SYMBOLS = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  syncfs: { parameters: ["i32"], result: "i32", nonblocking: true },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

const O_RDONLY_DIRECTORY = 0o200000;

/**
 * Opens the filesystem that holds the directory `dir` for `syncfs(2)`, or
 * undefined where that call cannot be made (not Linux, no FFI permission).
 * One syncfs costs about as much as one fsync, whatever number of files was
 * written, which is what makes per-layer durability cheap.
 */
export function openFilesystemSync(dir: string): FilesystemSync | undefined {
  if (Deno.build.os !== "linux") return undefined;
  try {
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return undefined;
    const lib = Deno.dlopen("libc.so.6", SYNC_SYMBOLS);
    const fd = lib.symbols.open(cString(dir), O_RDONLY_DIRECTORY);
    if (fd < 0) {
      lib.close();
      return undefined;
    }
    let closed = false;
    return {
      async sync() {
        if (closed) throw new Error("syncfs after close");
        if ((await lib.symbols.syncfs(fd)) !== 0) {
          const p = lib.symbols.__errno_location();
          throw new PosixError(`syncfs ${dir}`, p ? new Deno.UnsafePointerView(p).getInt32() : 0);
        }
      },
      close() {
        if (closed) return;
        closed = true;
        lib.symbols.close(fd);
        lib.close();
      },
    };
  } catch {
    return undefined;
  }
}
