import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Hasher } from "../src/util/digest.ts";
import { blockHashImplementation, streamSha256 } from "../src/util/sha256_blocks.ts";
import { noise } from "./helpers/data.ts";

const nodeDigest = (alg: string, parts: Uint8Array[]) => {
  const h = createHash(alg);
  for (const p of parts) h.update(p);
  return `${alg}:${h.digest("hex")}`;
};

Deno.test("Hasher: libcrypto is used for SHA-256 where fs-verity uses it", () => {
  assert.equal(streamSha256() !== undefined, blockHashImplementation() === "libcrypto");
});

Deno.test("Hasher: updates here and aside, and copies, give node:crypto's digests", async () => {
  // Sizes on both sides of the aside threshold (256 KiB), and ragged ones.
  const parts = [0, 1, 63, 64, 65, 4096, 300_000, 1 << 20, 3, 262_144, 262_143, 5_000_001].map((n, i) =>
    noise(n, i + 1)
  );
  for (const alg of ["sha256", "sha512"] as const) {
    const h = new Hasher(alg);
    let copy: Hasher | undefined;
    for (const [i, p] of parts.entries()) {
      if (i % 2 === 0) h.update(p);
      else await h.updateAside(p);
      if (i === 5) copy = h.copy();
    }
    assert.equal(h.size, parts.reduce((a, p) => a + p.length, 0));
    assert.equal(h.digest(), nodeDigest(alg, parts), `${alg} of every part`);
    assert.equal(copy!.digest(), nodeDigest(alg, parts.slice(0, 6)), `${alg} of a copy taken part way`);
  }
});

Deno.test("Hasher: a large chunk hashed aside leaves the calling thread free meanwhile", async () => {
  const h = new Hasher("sha256");
  const big = noise(32 << 20, 7);
  const pending = h.updateAside(big);
  if (!pending) return; // no libcrypto here: hashed on this thread, as node:crypto would
  let turns = 0;
  let done = false;
  pending.then(() => (done = true));
  while (!done) {
    turns++;
    await new Promise((r) => setTimeout(r, 0));
  }
  assert.ok(turns >= 1, "the event loop turned while the chunk was hashed");
  assert.equal(h.digest(), nodeDigest("sha256", [big]));
});
