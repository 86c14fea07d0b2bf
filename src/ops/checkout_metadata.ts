/**
 * Checkout metadata: owners, modes, extended attributes and times applied to
 * what a checkout wrote, and device nodes and fifos made, as far as the system
 * allows. Ownership needs root; without it, as umoci --rootless does, the files
 * are the user's and each entry's real owner is recorded in a
 * `user.rootlesscontainers` xattr. Whatever could not be applied is counted by
 * kind, with the first reason, never hidden. Symlinks are never followed
 * (lchown, lutimes, lsetxattr; chmod only on what is not a symlink).
 *
 * @module
 */
import fs from "node:fs";
import type { TarEntry } from "../tar/header.ts";
import { openPosix, type Posix, S_IFBLK, S_IFCHR, S_IFIFO } from "../util/posix.ts";

/** Things that could not be applied, by kind. */
export interface NotApplied {
  /** Entries whose owner could not be set (not root, or chown failed). */
  ownership: number;
  /** Device nodes and fifos not created. */
  devices: number;
  /** Extended attributes not set. */
  xattrs: number;
  /** Entries of kinds a filesystem cannot hold (skipped). */
  other: number;
}

function runningAsRoot(): boolean {
  try {
    return Deno.uid() === 0;
  } catch {
    return false; // no permission to ask: assume not
  }
}

/** Applies entries' metadata during one checkout, counting what it cannot apply into `notApplied`. */
export class MetadataWriter {
  readonly posix: Posix | undefined = openPosix();
  readonly root = runningAsRoot();
  #reasons = new Map<keyof NotApplied, string>();

  constructor(readonly notApplied: NotApplied, readonly onDevice: () => void) {}

  /** Counts something not applied, keeping the first reason of its kind. */
  skip(kind: keyof NotApplied, reason: string): void {
    this.notApplied[kind]++;
    if (!this.#reasons.has(kind)) this.#reasons.set(kind, reason);
  }

  /** One note per kind not applied: how many, and why. */
  notes(): string[] {
    return [...this.#reasons].map(([kind, reason]) => `${this.notApplied[kind]} ${reason}`);
  }

  /** Releases the C library. */
  close(): void {
    this.posix?.close();
  }

  /** Makes a device node or fifo at `target`, where the system allows. */
  device(target: string, entry: TarEntry): void {
    const type = entry.kind === "fifo" ? S_IFIFO : entry.kind === "chardev" ? S_IFCHR : S_IFBLK;
    if (!this.posix) {
      this.skip("devices", "device nodes and fifos not created (needs Linux and FFI permission)");
      return;
    }
    if (type !== S_IFIFO && !this.root) {
      this.skip("devices", "device nodes not created (needs root)");
      return;
    }
    try {
      this.posix.mknod(target, type, 0o600, entry.devmajor, entry.devminor);
      this.onDevice();
    } catch (e) {
      this.skip("devices", `device nodes and fifos not created (${(e as Error).message})`);
    }
  }

  /** Applies owner (or its rootless record), mode, xattrs and times of `entry` to `target`. */
  apply(target: string, entry: TarEntry, symlink: boolean): void {
    if (this.root) {
      try {
        fs.lchownSync(target, entry.uid, entry.gid);
      } catch (e) {
        this.skip("ownership", `owners not set (${(e as Error).message})`);
      }
    } else if (entry.uid !== 0 || entry.gid !== 0) {
      // Not root: the files are ours, standing for root's. As umoci --rootless does, the
      // real owner is kept in a user.rootlesscontainers xattr (rootlesscontainers.com),
      // where the filesystem allows (never on a symlink).
      let kept = false;
      if (this.posix && !symlink) {
        try {
          this.posix.lsetxattr(target, ROOTLESS_XATTR, rootlessOwner(entry.uid, entry.gid));
          kept = true;
        } catch { /* counted below */ }
      }
      this.skip(
        "ownership",
        kept ? `owners not set (needs root); recorded in ${ROOTLESS_XATTR} xattrs` : "owners not set (needs root)",
      );
    }
    if (!symlink) Deno.chmodSync(target, entry.mode & 0o7777);
    for (const [name, value] of Object.entries(entry.xattrs)) {
      if (!this.posix) {
        this.skip("xattrs", "extended attributes not set (needs Linux and FFI permission)");
        continue;
      }
      try {
        this.posix.lsetxattr(target, name, value);
      } catch (e) {
        this.skip("xattrs", `extended attributes not set (first: ${(e as Error).message})`);
      }
    }
    fs.lutimesSync(target, entry.mtime, entry.mtime);
  }
}

/** The xattr rootless tools keep an entry's real owner in. */
const ROOTLESS_XATTR = "user.rootlesscontainers";

/**
 * The value of {@link ROOTLESS_XATTR}: the protobuf message `Resource { uint32
 * uid = 1; uint32 gid = 2; }`, zero fields left out (proto3).
 */
export function rootlessOwner(uid: number, gid: number): Uint8Array {
  const out: number[] = [];
  const field = (tag: number, v: number) => {
    if (v === 0) return;
    out.push(tag);
    for (; v >= 0x80; v = Math.floor(v / 128)) out.push((v & 0x7f) | 0x80);
    out.push(v);
  };
  field(0x08, uid);
  field(0x10, gid);
  return new Uint8Array(out);
}
