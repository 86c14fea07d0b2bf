/**
 * Test helper: a small tmpfs to run out of space on (ENOSPC). Mounting needs
 * root: without it the test is skipped with a visible message, and fails under
 * `REQUIRE_INTEROP=1` (CI runs as root).
 */
import { isRoot } from "./unpack.ts";

const dec = new TextDecoder();

/**
 * Mounts a tmpfs of `size` (`mount -o size=`: `1m`, `16m`) at `dir/mnt`, runs
 * `fn` with its path and unmounts it. Returns false (having run nothing) when
 * it cannot be mounted here, after saying so.
 */
export async function withTmpfs(
  test: string,
  dir: string,
  size: string,
  fn: (mnt: string) => Promise<void>,
): Promise<boolean> {
  const skip = (why: string) => {
    if (Deno.env.get("REQUIRE_INTEROP") === "1") throw new Error(`${test}: ${why}, and REQUIRE_INTEROP=1`);
    console.log(`SKIPPED ${test}: ${why}`);
    return false;
  };
  if (!isRoot()) return skip("needs root to mount a tmpfs");
  const mnt = `${dir}/mnt`;
  await Deno.mkdir(mnt);
  const mount = await new Deno.Command("mount", { args: ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", mnt] }).output();
  if (!mount.success) return skip(`mount -t tmpfs failed: ${dec.decode(mount.stderr).trim()}`);
  try {
    await fn(mnt);
  } finally {
    // Lazily when busy: a worker of an in-process run may still hold the repository's syncfs descriptor.
    const umount = await new Deno.Command("umount", { args: [mnt], stderr: "null" }).output();
    if (!umount.success) await new Deno.Command("umount", { args: ["-l", mnt] }).output();
  }
  return true;
}

/** Fills the filesystem holding `dir` to the last block, with a file `dir/filler`; returns its path. */
export function fillUp(dir: string): string {
  const path = `${dir}/filler`;
  const file = Deno.openSync(path, { write: true, createNew: true });
  const chunk = new Uint8Array(64 << 10);
  try {
    for (let size = chunk.length; size > 0;) {
      try {
        file.writeSync(chunk.subarray(0, size));
      } catch (e) {
        if ((e as { code?: string }).code !== "ENOSPC") throw e;
        size >>= 1; // the last blocks, in ever smaller writes
      }
    }
  } finally {
    file.close();
  }
  return path;
}
