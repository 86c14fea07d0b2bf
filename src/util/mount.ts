/**
 * Mounting through the kernel's new mount API (`fsopen`, `fsconfig`, `fsmount`,
 * `move_mount`, glibc 2.36+) and `umount2`, by FFI into the C library. A mount
 * made with `fsmount` is detached until `move_mount` attaches it, so a mount that
 * only serves as another's layer (a composefs image's EROFS) is never visible in
 * any directory. Loop devices (`LOOP_CTL_GET_FREE`, `LOOP_CONFIGURE`, autoclear)
 * for a kernel whose EROFS cannot mount a regular file. The mount table
 * (`/proc/self/mountinfo`), to tell which mounts are there and what made them.
 * Linux only: elsewhere, or without FFI permission, {@link openMountApi} and
 * {@link readMountTable} return undefined.
 *
 * @module
 */
import { cString, errnoOf, O_RDONLY_CLOEXEC, openLibc, PosixError } from "./posix.ts";
import { concat } from "./streams.ts";

/** A mount being configured or made: a file descriptor the caller closes. */
export interface MountApi {
  /** `fsopen(fstype)`: a filesystem context. */
  fsopen(fstype: string): number;
  /** `fsconfig(fd, FSCONFIG_SET_STRING, key, value)`, or `FSCONFIG_SET_FLAG` when `value` is undefined. */
  set(fd: number, key: string, value?: string): void;
  /**
   * `fsconfig(FSCONFIG_CMD_CREATE)` then `fsmount(MOUNT_ATTR_RDONLY)`: the
   * superblock made and a detached read-only mount of it returned (a descriptor).
   */
  create(fd: number, what: string): number;
  /** `move_mount(mfd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH)`: attaches a detached mount at `target`. */
  attach(mfd: number, target: string): void;
  /** `umount2(target, flags)`; `detach` for MNT_DETACH. */
  unmount(target: string, detach?: boolean): void;
  /**
   * A free loop device set up read-only, autoclear, on `file`: its path, and a
   * descriptor of it to close once the mount holds it (autoclear frees the
   * device at its last close: the mount's, when it goes).
   */
  loopDevice(file: string): { path: string; fd: number };
  /** Closes a descriptor. */
  closeFd(fd: number): void;
  /** Releases the library. */
  close(): void;
}

const SYMBOLS = {
  fsopen: { parameters: ["buffer", "u32"], result: "i32" },
  fsconfig: { parameters: ["i32", "u32", "buffer", "buffer", "i32"], result: "i32" },
  fsmount: { parameters: ["i32", "u32", "u32"], result: "i32" },
  move_mount: { parameters: ["i32", "buffer", "i32", "buffer", "u32"], result: "i32" },
  umount2: { parameters: ["buffer", "i32"], result: "i32" },
  open: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  ioctl: { parameters: ["i32", "u64", "u64"], result: "i32" },
  ioctlPtr: { name: "ioctl", parameters: ["i32", "u64", "buffer"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

const FSOPEN_CLOEXEC = 1;
const FSCONFIG_SET_FLAG = 0;
const FSCONFIG_SET_STRING = 1;
const FSCONFIG_CMD_CREATE = 6;
const FSMOUNT_CLOEXEC = 1;
const MOUNT_ATTR_RDONLY = 1;
const AT_FDCWD = -100;
const MOVE_MOUNT_F_EMPTY_PATH = 4;
const MNT_DETACH = 2;
const O_RDWR_CLOEXEC = 0o2000002;
const LOOP_CTL_GET_FREE = 0x4c82n;
const LOOP_CONFIGURE = 0x4c0an;
const LO_FLAGS_READ_ONLY = 1;
const LO_FLAGS_AUTOCLEAR = 4;
/** struct loop_config: fd, block_size, struct loop_info64 (232 bytes: lo_flags at 52), 8 reserved u64. */
const LOOP_CONFIG_SIZE = 304;
const LOOP_CONFIG_FLAGS = 8 + 52;

/** Opens the C library for mounting, or undefined where it cannot be used here. */
export function openMountApi(): MountApi | undefined {
  const lib = openLibc(SYMBOLS);
  if (!lib) return undefined;
  const s = lib.symbols;
  const errno = errnoOf(lib);
  const check = (r: number, call: string) => {
    if (r < 0) throw new PosixError(call, errno());
    return r;
  };
  return {
    fsopen: (fstype) => check(s.fsopen(cString(fstype), FSOPEN_CLOEXEC), `fsopen ${fstype}`),
    set(fd, key, value) {
      const r = value === undefined
        ? s.fsconfig(fd, FSCONFIG_SET_FLAG, cString(key), null, 0)
        : s.fsconfig(fd, FSCONFIG_SET_STRING, cString(key), cString(value), 0);
      check(r, `fsconfig ${key}${value === undefined ? "" : `=${value}`}`);
    },
    create(fd, what) {
      check(s.fsconfig(fd, FSCONFIG_CMD_CREATE, null, null, 0), `creating the ${what} superblock`);
      return check(s.fsmount(fd, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY), `fsmount ${what}`);
    },
    attach(mfd, target) {
      check(s.move_mount(mfd, cString(""), AT_FDCWD, cString(target), MOVE_MOUNT_F_EMPTY_PATH), `move_mount ${target}`);
    },
    unmount(target, detach = false) {
      check(s.umount2(cString(target), detach ? MNT_DETACH : 0), `umount ${target}`);
    },
    loopDevice(file) {
      const ctl = check(s.open(cString("/dev/loop-control"), O_RDWR_CLOEXEC), "open /dev/loop-control");
      let n: number;
      try {
        n = check(s.ioctl(ctl, LOOP_CTL_GET_FREE, 0n), "LOOP_CTL_GET_FREE");
      } finally {
        s.close(ctl);
      }
      const path = `/dev/loop${n}`;
      const backing = check(s.open(cString(file), O_RDONLY_CLOEXEC), `open ${file}`);
      try {
        const dev = check(s.open(cString(path), O_RDONLY_CLOEXEC), `open ${path}`);
        try {
          const config = new Uint8Array(LOOP_CONFIG_SIZE);
          const view = new DataView(config.buffer);
          view.setUint32(0, backing, true);
          view.setUint32(LOOP_CONFIG_FLAGS, LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR, true);
          check(s.ioctlPtr(dev, LOOP_CONFIGURE, config), `LOOP_CONFIGURE ${path}`);
        } catch (e) {
          s.close(dev);
          throw e;
        }
        return { path, fd: dev };
      } finally {
        s.close(backing);
      }
    },
    closeFd: (fd) => void s.close(fd),
    close: () => lib.close(),
  };
}

/** One mount as the kernel lists it in `/proc/self/mountinfo` (proc(5)). */
export interface MountEntry {
  /** The mount's ID (unique while it is mounted). */
  id: number;
  /** The ID of the mount it is mounted on (itself for the root). */
  parent: number;
  /** Where it is mounted, absolute in this process's root, unescaped. */
  mountPoint: string;
  /** The filesystem type (`overlay`, `tmpfs`, ...). */
  fsType: string;
  /** Its source as the filesystem reports it (`tmpfs`, `/dev/sda1`, what `fsconfig source` set), unescaped. */
  source: string;
}

/** The mounts a process sees, and the mount namespace they belong to. */
export interface MountTable {
  mounts: MountEntry[];
  /** `mnt:[INODE]`, from `/proc/self/ns/mnt`. */
  namespace: string;
}

/** Mountinfo's escapes (`\040` for a space, `\134` for a backslash, ...) undone. */
function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, octal) => String.fromCharCode(parseInt(octal, 8)));
}

/**
 * Parses mountinfo text: per line the mount ID, the parent ID, the mount point
 * (fifth field) and, after the ` - ` separator (optional fields come before it),
 * the filesystem type and source. Lines that do not parse are skipped.
 */
export function parseMountInfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split("\n")) {
    const [head, tail] = line.split(" - ", 2);
    if (tail === undefined) continue;
    const f = head.split(" ");
    const [fsType, source] = tail.split(" ");
    if (f.length < 6 || source === undefined) continue;
    out.push({
      id: Number(f[0]),
      parent: Number(f[1]),
      mountPoint: unescapeMountField(f[4]),
      fsType: unescapeMountField(fsType),
      source: unescapeMountField(source),
    });
  }
  return out;
}

/** The topmost of the mounts at `path` (the one no other mount there is mounted on), if any. */
export function topMountAt(mounts: readonly MountEntry[], path: string): MountEntry | undefined {
  const here = mounts.filter((m) => m.mountPoint === path);
  return here.find((m) => !here.some((o) => o.parent === m.id && o !== m));
}

const TABLE_SYMBOLS = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  readlink: { parameters: ["buffer", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
} as const;

/** Most bytes of mountinfo read (about 100,000 mounts). */
const MAX_MOUNTINFO = 16 << 20;

/**
 * The mounts this process sees, read from `/proc/self/mountinfo` through the C
 * library (Deno lets a program read `/proc/self` only with every permission,
 * which the executable does not have); undefined where that cannot be done
 * (not Linux, no FFI permission, no `/proc`).
 */
export function readMountTable(): MountTable | undefined {
  const lib = openLibc(TABLE_SYMBOLS);
  if (!lib) return undefined;
  const s = lib.symbols;
  try {
    const link = new Uint8Array(256);
    const n = Number(s.readlink(cString("/proc/self/ns/mnt"), link, BigInt(link.length)));
    const fd = s.open(cString("/proc/self/mountinfo"), O_RDONLY_CLOEXEC);
    if (n <= 0 || fd < 0) {
      if (fd >= 0) s.close(fd);
      return undefined;
    }
    const chunks: Uint8Array[] = [];
    let total = 0;
    try {
      for (;;) {
        const buf = new Uint8Array(64 << 10);
        const got = Number(s.read(fd, buf, BigInt(buf.length)));
        if (got < 0) return undefined;
        if (got === 0) break;
        chunks.push(buf.subarray(0, got));
        if ((total += got) > MAX_MOUNTINFO) return undefined;
      }
    } finally {
      s.close(fd);
    }
    const text = new TextDecoder().decode(concat(chunks, total));
    return { mounts: parseMountInfo(text), namespace: new TextDecoder().decode(link.subarray(0, n)) };
  } finally {
    lib.close();
  }
}
