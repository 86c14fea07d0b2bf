/**
 * Test helper: describes a directory tree (paths, types, modes, link targets,
 * content digests, and optionally owners, mtimes, hardlink groups and xattrs)
 * so two trees can be compared with one assertion.
 */
import { sha256 } from "../../src/util/digest.ts";

/** One path of a tree. */
export interface TreeNode {
  type: "file" | "dir" | "symlink" | "fifo" | "chardev" | "blockdev" | "other";
  mode: number;
  /** sha256 of file content, or symlink target, or `major,minor` of a device. */
  value?: string;
  /** `uid:gid`, with `owner`. */
  owner?: string;
  /** Modification time in ms, with `mtime` (directories too unless `mtime: "nondir"`). */
  mtime?: number;
  /** With `links`: the first path (in sorted order) of this file's hardlink group, when it has others. */
  linkGroup?: string;
  /** With `xattrs`: extended attributes, values as text. */
  xattrs?: Record<string, string>;
}

/** What to include beyond type, mode and content. */
export interface TreeOptions {
  owner?: boolean;
  mtime?: boolean | "nondir";
  links?: boolean;
  xattrs?: boolean;
}

/** Lists every path under `root` (relative), with its description. */
export async function describeTree(root: string, options: TreeOptions = {}): Promise<Record<string, TreeNode>> {
  const out: Record<string, TreeNode> = {};
  const inodes = new Map<number, string[]>();
  async function walk(rel: string): Promise<void> {
    for await (const e of Deno.readDir(rel ? `${root}/${rel}` : root)) {
      const path = rel ? `${rel}/${e.name}` : e.name;
      const full = `${root}/${path}`;
      const st = await Deno.lstat(full);
      const mode = (st.mode ?? 0) & 0o7777;
      let node: TreeNode;
      if (st.isSymlink) node = { type: "symlink", mode: 0, value: await Deno.readLink(full) };
      else if (st.isDirectory) node = { type: "dir", mode };
      else if (st.isFile) node = { type: "file", mode, value: sha256(await Deno.readFile(full)) };
      else if (st.isFifo) node = { type: "fifo", mode };
      else if (st.isCharDevice || st.isBlockDevice) {
        const rdev = st.rdev ?? 0;
        node = {
          type: st.isCharDevice ? "chardev" : "blockdev",
          mode,
          value: `${(rdev >> 8) & 0xfff},${(rdev & 0xff) | ((rdev >> 12) & 0xfff00)}`,
        };
      } else node = { type: "other", mode };
      if (options.owner) node.owner = `${st.uid}:${st.gid}`;
      if (options.mtime && (options.mtime !== "nondir" || !st.isDirectory)) node.mtime = st.mtime?.getTime();
      if (options.links && st.isFile && (st.nlink ?? 1) > 1) {
        const group = inodes.get(st.ino!) ?? [];
        group.push(path);
        inodes.set(st.ino!, group);
      }
      if (options.xattrs) {
        const x = listXattrs(full);
        if (Object.keys(x).length) node.xattrs = x;
      }
      out[path] = node;
      if (st.isDirectory) await walk(path);
    }
  }
  await walk("");
  for (const group of inodes.values()) {
    if (group.length < 2) continue;
    const first = [...group].sort()[0];
    for (const p of group) out[p].linkGroup = first;
  }
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

let libc:
  | Deno.DynamicLibrary<{
    llistxattr: { parameters: ["buffer", "buffer", "usize"]; result: "isize" };
    lgetxattr: { parameters: ["buffer", "buffer", "buffer", "usize"]; result: "isize" };
  }>
  | undefined;

/** The extended attributes of `path` itself (Linux; empty elsewhere). */
export function listXattrs(path: string): Record<string, string> {
  if (Deno.build.os !== "linux") return {};
  libc ??= Deno.dlopen(
    "libc.so.6",
    {
      llistxattr: { parameters: ["buffer", "buffer", "usize"], result: "isize" },
      lgetxattr: { parameters: ["buffer", "buffer", "buffer", "usize"], result: "isize" },
    } as const,
  );
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  const p = enc.encode(path + "\0");
  const names = new Uint8Array(64 * 1024);
  const n = Number(libc.symbols.llistxattr(p, names, BigInt(names.length)));
  const out: Record<string, string> = {};
  if (n <= 0) return out;
  for (const name of dec.decode(names.subarray(0, n)).split("\0").filter(Boolean)) {
    const value = new Uint8Array(64 * 1024);
    const m = Number(libc.symbols.lgetxattr(p, enc.encode(name + "\0"), value, BigInt(value.length)));
    if (m >= 0) out[name] = dec.decode(value.subarray(0, m));
  }
  return out;
}
