/**
 * fs-verity digests: the streaming hasher agrees with `fsverity digest --compact`
 * (the kernel's algorithm in userspace) for sizes around block and tree-level
 * boundaries, whatever the chunk sizes it is fed.
 */
import assert from "node:assert/strict";
import { FsVerityHasher, fsverityHex } from "../src/composefs/fsverity.ts";
import { blockHashImplementation, nodeBlockHasher } from "../src/util/sha256_blocks.ts";
import { noise } from "./helpers/data.ts";
import { haveTools, run } from "./helpers/interop.ts";

const MiB = 1 << 20;
/** Sizes at the edges: empty, one byte, one block -1/0/+1, past one tree level (128 blocks), past two (16384). */
const SIZES = [0, 1, 4095, 4096, 4097, MiB + 1, 64 * MiB + 1];
/** Chunk sizes that straddle the 4096-byte blocks in every way. */
const CHUNKS = [1, 7, 4095, 4097, 65_537, 1 << 22];

/** The digest of `data` fed in chunks of `chunk` bytes. */
function digestInChunks(data: Uint8Array, chunk: number): string {
  const h = new FsVerityHasher();
  for (let o = 0; o < data.length; o += chunk) h.update(data.subarray(o, o + chunk));
  assert.equal(h.size, data.length);
  return h.hexDigest();
}

Deno.test("fsverity: the empty file's digest has the all-zero root hash", () => {
  // SHA-256 of the descriptor {1, 1, 12, 0, size 0, root hash 0...}: what `fsverity digest` prints for an empty file.
  assert.equal(fsverityHex(new Uint8Array(0)), "3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95");
});

Deno.test({
  name: "fsverity: digests equal `fsverity digest --compact` for every size, fed in odd chunks",
  ignore: !haveTools("fsverity digest", "fsverity"),
  async fn() {
    const big = noise(64 * MiB + 1, 0x5eed); // generated once; every size is a prefix of it
    const dir = await Deno.makeTempDir({ prefix: "fsverity-" });
    try {
      for (const size of SIZES) {
        const data = big.subarray(0, size);
        const file = `${dir}/f${size}`;
        await Deno.writeFile(file, data);
        const want = (await run("fsverity", "digest", "--compact", file)).trim();
        for (const chunk of CHUNKS) {
          if (size / chunk > 2 * MiB) continue; // 1-byte feeding of 64 MiB would take minutes
          assert.equal(digestInChunks(data, chunk), want, `${size} bytes in chunks of ${chunk}`);
        }
        assert.equal(fsverityHex(data), want, `${size} bytes at once`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("fsverity: digest() is once only, and update() after it is refused", () => {
  const h = new FsVerityHasher();
  h.update(new Uint8Array(10));
  h.digest();
  assert.throws(() => h.digest());
  assert.throws(() => h.update(new Uint8Array(1)));
});

Deno.test("fsverity: libcrypto's and node:crypto's block hashing give the same digests; libcrypto is used where it loads", () => {
  const data = noise(3 * MiB + 123, 0xb10c);
  for (const size of [0, 1, 4095, 4096, 4097, MiB + 1, 3 * MiB + 123]) {
    const fast = new FsVerityHasher();
    const node = new FsVerityHasher(nodeBlockHasher());
    fast.update(data.subarray(0, size));
    node.update(data.subarray(0, size));
    assert.equal(fast.hexDigest(), node.hexDigest(), `${size} bytes`);
  }
  let loads = false;
  try {
    Deno.dlopen("libcrypto.so.3", { SHA256_Init: { parameters: ["buffer"], result: "i32" } }).close();
    loads = true;
  } catch { /* not installed here */ }
  if (loads) assert.equal(blockHashImplementation(), "libcrypto");
});
