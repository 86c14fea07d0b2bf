/**
 * Test helper: zstd frames made against a raw-content dictionary by the real
 * `zstd --patch-from` (the kind tar-diff version 2's ZstdDict op carries), and
 * the inputs of the committed "prefix" vector.
 */
import { concat } from "../../src/util/streams.ts";
import { noise } from "./data.ts";

/** The committed vector: a frame of `prefixPair().now` made with `zstd --patch-from` against `prefixPair().old`. */
export const PREFIX_FRAME = new URL("../../testdata/zstd-dict/prefix.zst", import.meta.url).pathname;

/** Bytes of the source file the prefix vector's tar-diff copies from before its ZstdDict op. */
export const PREFIX_COPIED = 4096;

/**
 * The prefix vector's old and new file: NEW starts with OLD's first 4 KiB (so
 * its frame matches into the part of the dictionary a Copy has already read),
 * then new bytes, then OLD's middle with a few bytes changed.
 */
export function prefixPair(): { old: Uint8Array; now: Uint8Array } {
  const old = noise(64 << 10, 1301);
  const middle = old.slice(20_000, 50_000);
  for (let i = 0; i < middle.length; i += 997) middle[i] ^= 0x5a;
  return { old, now: concat([old.subarray(0, PREFIX_COPIED), noise(3000, 77), middle]) };
}

/** `zstd --patch-from=OLD NEW` (level 3, checksum), in a temporary directory. */
export async function patchFrom(old: Uint8Array, now: Uint8Array, args: string[] = []): Promise<Uint8Array> {
  const dir = await Deno.makeTempDir({ prefix: "zstd-patch-" });
  try {
    await Deno.writeFile(`${dir}/old`, old);
    await Deno.writeFile(`${dir}/new`, now);
    const out = await new Deno.Command("zstd", {
      args: ["-q", "-f", ...args, `--patch-from=${dir}/old`, `${dir}/new`, "-o", `${dir}/frame`],
      stderr: "piped",
    }).output();
    if (!out.success) throw new Error(`zstd --patch-from failed: ${new TextDecoder().decode(out.stderr)}`);
    return await Deno.readFile(`${dir}/frame`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** `zstd -d --patch-from=OLD` of `frame`: the decompressed bytes, or the tool's error. */
export async function unpatch(old: Uint8Array, frame: Uint8Array): Promise<Uint8Array> {
  const dir = await Deno.makeTempDir({ prefix: "zstd-unpatch-" });
  try {
    await Deno.writeFile(`${dir}/old`, old);
    await Deno.writeFile(`${dir}/frame`, frame);
    const out = await new Deno.Command("zstd", {
      args: ["-q", "-d", "-f", "--long=30", `--patch-from=${dir}/old`, `${dir}/frame`, "-o", `${dir}/new`],
      stderr: "piped",
    }).output();
    if (!out.success) throw new Error(`zstd -d --patch-from failed: ${new TextDecoder().decode(out.stderr)}`);
    return await Deno.readFile(`${dir}/new`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
