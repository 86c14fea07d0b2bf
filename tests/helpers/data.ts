/**
 * Test helper: bulk data that does not compress (for large layers), and a way to
 * watch files grow.
 */

/** `size` pseudo-random bytes from `seed` (xorshift32): incompressible and repeatable. */
export function noise(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed;
  const view = new Uint32Array(out.buffer, 0, size >> 2);
  for (let i = 0; i < view.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    view[i] = x;
  }
  return out;
}

/** Size of the largest file under `dir` (0 when there is none, or no `dir`). */
export function largestFile(dir: string): number {
  let max = 0;
  try {
    for (const e of Deno.readDirSync(dir)) {
      const p = `${dir}/${e.name}`;
      const st = Deno.lstatSync(p);
      max = Math.max(max, st.isDirectory ? largestFile(p) : st.size);
    }
  } catch { /* not there yet, or gone meanwhile */ }
  return max;
}
