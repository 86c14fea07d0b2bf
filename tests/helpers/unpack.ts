/**
 * Test helper: the reference unpacker (umoci raw unpack) and the tree
 * comparison a checkout must pass against it.
 */
import { run } from "./interop.ts";
import type { TreeOptions } from "./tree.ts";

/** True when the tests run as root (ownership, device nodes and trusted xattrs apply). */
export function isRoot(): boolean {
  return Deno.uid() === 0;
}

/** `umoci raw unpack` of `layout:tag` into `dest` (rootless unless running as root, as deltaship behaves). */
export async function umociUnpack(layout: string, tag: string, dest: string): Promise<void> {
  await run("umoci", "raw", "unpack", ...(isRoot() ? [] : ["--rootless"]), "--image", `${layout}:${tag}`, dest);
}

/**
 * What a checkout must reproduce of umoci's tree: everything but directory
 * mtimes (umoci leaves directories it had to create with the time of the
 * unpack) and, unless root, owners.
 */
export function referenceOptions(): TreeOptions {
  return { owner: isRoot(), mtime: "nondir", links: true, xattrs: true };
}
