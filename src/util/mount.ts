/**
 * Mounting through the kernel's new mount API (`fsopen`, `fsconfig`, `fsmount`,
 * `move_mount`, glibc 2.36+) and `umount2`, by FFI into the C library. A mount
 * made with `fsmount` is detached until `move_mount` attaches it, so a mount that
 * only serves as another's layer (a composefs image's EROFS) is never visible in
 * any directory. Loop devices (`LOOP_CTL_GET_FREE`, `LOOP_CONFIGURE`, autoclear)
 * for a kernel whose EROFS cannot mount a regular file. Linux only: elsewhere, or
 * without FFI permission, {@link openMountApi} returns undefined.
 *
 * @module
 */
import { cString, errnoOf, O_RDONLY_CLOEXEC, openLibc, PosixError } from "./posix.ts";

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
