/**
 * Test helper: describes a directory tree (paths, types, modes, link targets,
 * content digests) so two trees can be compared with one assertion.
 */
import { sha256 } from "../../src/util/digest.ts";

/** One path of a tree. */
export interface TreeNode {
  type: "file" | "dir" | "symlink" | "other";
  mode: number;
  /** sha256 of file content, or symlink target. */
  value?: string;
}

/** Lists every path under `root` (relative), with its description. */
export async function describeTree(root: string): Promise<Record<string, TreeNode>> {
  const out: Record<string, TreeNode> = {};
  async function walk(rel: string): Promise<void> {
    for await (const e of Deno.readDir(rel ? `${root}/${rel}` : root)) {
      const path = rel ? `${rel}/${e.name}` : e.name;
      const full = `${root}/${path}`;
      const st = await Deno.lstat(full);
      const mode = (st.mode ?? 0) & 0o7777;
      if (st.isSymlink) out[path] = { type: "symlink", mode: 0, value: await Deno.readLink(full) };
      else if (st.isDirectory) {
        out[path] = { type: "dir", mode };
        await walk(path);
      } else if (st.isFile) out[path] = { type: "file", mode, value: sha256(await Deno.readFile(full)) };
      else out[path] = { type: "other", mode };
    }
  }
  await walk("");
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a.localeCompare(b)));
}
