/**
 * The few POSIX calls Deno has no API for, made through FFI into the C library:
 * `mknod` and `lsetxattr` for a checkout's device nodes, fifos and extended
 * attributes, `syncfs` for the repository's barriers, and the fs-verity ioctls
 * for its objects. Linux only: elsewhere, or without FFI permission, the
 * `open*` functions return undefined and callers do without.
 *
 * @module
 */

/** A failed call, with the C library's error number. */
export class PosixError extends Error {
  override name = "PosixError";
  /** The error's name (`ENOSPC`, ...) where it is one of the known ones, as Deno's own errors carry it. */
  readonly code: string | undefined;
  constructor(readonly call: string, readonly errno: number) {
    super(`${call}: ${ERRNO_NAMES[errno] ?? `errno ${errno}`}`);
    this.code = ERRNO_NAMES[errno]?.split(" ")[0];
  }
}

const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM (operation not permitted)",
  2: "ENOENT (no such file or directory)",
  13: "EACCES (permission denied)",
  17: "EEXIST (file exists)",
  22: "EINVAL (invalid argument)",
  25: "ENOTTY (inappropriate ioctl for device)",
  28: "ENOSPC (no space left on device)",
  30: "EROFS (read-only file system)",
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

/** `open(2)` flags `O_RDONLY | O_CLOEXEC`, for the FFI callers here and in mount.ts. */
export const O_RDONLY_CLOEXEC = 0o2000000;

/** `s` as a C string: UTF-8 with a terminating NUL. */
export function cString(s: string): Uint8Array {
  return enc.encode(s + "\0");
}

/**
 * The C library with `symbols`, or undefined where FFI cannot be used here (not
 * Linux, no FFI permission, no `libc.so.6`): callers then do without the calls.
 */
export function openLibc<const S extends Deno.ForeignLibraryInterface>(symbols: S): Deno.DynamicLibrary<S> | undefined {
  if (Deno.build.os !== "linux") return undefined;
  try {
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return undefined;
    return Deno.dlopen("libc.so.6", symbols);
  } catch {
    return undefined;
  }
}

/** Reads the calling thread's `errno` through a library that has `__errno_location`. */
export function errnoOf(lib: { symbols: { __errno_location(): Deno.PointerValue } }): () => number {
  return () => {
    const p = lib.symbols.__errno_location();
    return p ? new Deno.UnsafePointerView(p).getInt32() : 0;
  };
}

/** Linux's makedev(3). */
function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) | (mi & 0xffn);
}

/** Opens the C library, or undefined when it cannot be used here. */
export function openPosix(): Posix | undefined {
  const lib = openLibc(SYMBOLS);
  if (!lib) return undefined;
  const errno = errnoOf(lib);
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
  const lib = openLibc(SYNC_SYMBOLS);
  if (!lib) return undefined;
  const fd = lib.symbols.open(cString(dir), O_RDONLY_DIRECTORY);
  if (fd < 0) {
    lib.close();
    return undefined;
  }
  const errno = errnoOf(lib);
  let closed = false;
  return {
    async sync() {
      if (closed) throw new Error("syncfs after close");
      if ((await lib.symbols.syncfs(fd)) !== 0) throw new PosixError(`syncfs ${dir}`, errno());
    },
    close() {
      if (closed) return;
      closed = true;
      lib.symbols.close(fd);
      lib.close();
    },
  };
}

/** What enabling fs-verity on a file came to. */
export type VerityEnabled = "enabled" | "unsupported";

/** What the kernel says of a file's fs-verity. */
export type VerityMeasure = Uint8Array | "none" | "unsupported";

/**
 * fs-verity through the kernel (Documentation/filesystems/fsverity.rst): enabling
 * it on a file (SHA-256, 4096-byte blocks, no salt: the digest composefs names
 * objects by) and reading back the kernel's measurement.
 */
export interface FsVerity {
  /**
   * Enables fs-verity on the regular file at `path` (opened read-only, as the
   * kernel requires; nobody may hold it open for writing). "enabled" also when
   * it already was; "unsupported" where the filesystem or kernel cannot (ENOTTY,
   * EOPNOTSUPP, ENOPKG, or EINVAL for the 4096-byte block size). Any other
   * failure (ENOSPC for the Merkle tree, EROFS, ...) is a {@link PosixError}.
   */
  enable(path: string): Promise<VerityEnabled>;
  /**
   * The kernel's fs-verity SHA-256 digest of `path` (`FS_IOC_MEASURE_VERITY`);
   * "none" when the file has no fs-verity, "unsupported" where the filesystem
   * has none at all.
   */
  measure(path: string): VerityMeasure;
  /** Releases the library. */
  close(): void;
}

const VERITY_SYMBOLS = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  // The same call on a thread of its own: enabling reads the whole file to build its Merkle tree.
  ioctlAsync: { name: "ioctl", parameters: ["i32", "u64", "buffer"], result: "i32", nonblocking: true },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

/** `_IOW('f', 133, struct fsverity_enable_arg)` and `_IOWR('f', 134, struct fsverity_digest)` (linux/fsverity.h). */
const FS_IOC_ENABLE_VERITY = 0x40806685n;
const FS_IOC_MEASURE_VERITY = 0xc0046686n;
const FS_VERITY_HASH_ALG_SHA256 = 1;
const ENOENT = 2;
const EEXIST = 17;
const EINVAL = 22;
const ENOTTY = 25;
const ENODATA = 61;
const ENOPKG = 65;
const EOPNOTSUPP = 95;
const VERITY_UNSUPPORTED = new Set([ENOTTY, EOPNOTSUPP, ENOPKG, EINVAL]);

/**
 * Opens the C library for fs-verity calls, or undefined where they cannot be
 * made (not Linux, no FFI permission): callers then treat fs-verity as
 * unsupported.
 */
export function openFsVerity(): FsVerity | undefined {
  const lib = openLibc(VERITY_SYMBOLS);
  if (!lib) return undefined;
  const errno = errnoOf(lib);
  const openFd = (path: string, call: string): number => {
    const fd = lib.symbols.open(cString(path), O_RDONLY_CLOEXEC);
    if (fd < 0) {
      const e = errno();
      if (e === ENOENT) throw new Deno.errors.NotFound(`${call} ${path}: no such file`);
      throw new PosixError(`${call} ${path}`, e);
    }
    return fd;
  };
  return {
    async enable(path) {
      const arg = new Uint8Array(128); // struct fsverity_enable_arg
      const view = new DataView(arg.buffer);
      view.setUint32(0, 1, true); // version
      view.setUint32(4, FS_VERITY_HASH_ALG_SHA256, true);
      view.setUint32(8, 4096, true); // block size
      const fd = openFd(path, "FS_IOC_ENABLE_VERITY");
      try {
        if ((await lib.symbols.ioctlAsync(fd, FS_IOC_ENABLE_VERITY, arg)) === 0) return "enabled";
        // errno is per thread and the call ran on another: ask again here, where it fails (or
        // finds verity already enabled) at once.
        if (lib.symbols.ioctl(fd, FS_IOC_ENABLE_VERITY, arg) === 0) return "enabled";
        const e = errno();
        if (e === EEXIST) return "enabled";
        if (VERITY_UNSUPPORTED.has(e)) return "unsupported";
        throw new PosixError(`FS_IOC_ENABLE_VERITY ${path}`, e);
      } finally {
        lib.symbols.close(fd);
      }
    },
    measure(path) {
      const buf = new Uint8Array(4 + 64); // struct fsverity_digest with room for the largest digest
      new DataView(buf.buffer).setUint16(2, 64, true);
      const fd = openFd(path, "FS_IOC_MEASURE_VERITY");
      try {
        if (lib.symbols.ioctl(fd, FS_IOC_MEASURE_VERITY, buf) !== 0) {
          const e = errno();
          if (e === ENODATA) return "none";
          if (VERITY_UNSUPPORTED.has(e)) return "unsupported";
          throw new PosixError(`FS_IOC_MEASURE_VERITY ${path}`, e);
        }
        const view = new DataView(buf.buffer);
        if (view.getUint16(0, true) !== FS_VERITY_HASH_ALG_SHA256) return "none"; // another algorithm: not ours
        return buf.slice(4, 4 + view.getUint16(2, true));
      } finally {
        lib.symbols.close(fd);
      }
    },
    close: () => lib.close(),
  };
}
