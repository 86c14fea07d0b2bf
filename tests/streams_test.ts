import assert from "node:assert/strict";
import zlib from "node:zlib";
import { coalesce } from "../src/util/streams.ts";
import { decompressor } from "../src/compression/stages.ts";
import { Hasher, sha256 } from "../src/util/digest.ts";

/** A stream over `bytes` in `chunk`-sized pieces that counts how much was pulled. */
function counted(bytes: Uint8Array, chunk: number) {
  const state = { pulled: 0 };
  const stream = new ReadableStream<Uint8Array>({
    pull(c) {
      if (state.pulled >= bytes.length) return c.close();
      const piece = bytes.subarray(state.pulled, state.pulled + chunk);
      state.pulled += piece.length;
      c.enqueue(piece);
    },
  }, { highWaterMark: 0 });
  return { stream, state };
}

Deno.test("streams: the decompressor keeps backpressure (a slow reader does not make it inflate everything)", async () => {
  const raw = new Uint8Array(16 << 20);
  for (let o = 0; o < raw.length; o += 65536) crypto.getRandomValues(raw.subarray(o, o + 65536));
  const gz = new Uint8Array(zlib.gzipSync(raw, { level: 1 }));
  const { stream, state } = counted(gz, 64 * 1024);
  const reader = stream.pipeThrough(decompressor("gzip")).getReader();
  const first = await reader.read();
  assert.ok(!first.done);
  await new Promise((r) => setTimeout(r, 300)); // a stalled consumer
  assert.ok(state.pulled < 4 << 20, `read ${state.pulled} of ${gz.length} compressed bytes ahead of a stalled reader`);
  // and the output is still complete and exact
  const h = new Hasher();
  h.update(first.value);
  for (;;) {
    const r = await reader.read();
    if (r.done) break;
    h.update(r.value);
  }
  assert.equal(h.digest(), sha256(raw));
});

Deno.test("streams: decompressor errors reach the reader", async () => {
  const bad = new Uint8Array(zlib.gzipSync(new Uint8Array(100_000)));
  bad[bad.length - 6] ^= 0xff; // CRC
  const { stream } = counted(bad, 1000);
  await assert.rejects(async () => {
    for await (const _ of stream.pipeThrough(decompressor("gzip"))) { /* drain */ }
  }, /incorrect data check/);
});

Deno.test("streams: coalesce joins small chunks, passes big ones through, keeps every byte", async () => {
  const sizes = [10, 20, 100, 5, 300, 40, 1, 0, 250, 7];
  const input = sizes.map((n, i) => new Uint8Array(n).fill(i));
  const out: Uint8Array[] = [];
  await ReadableStream.from(input).pipeThrough(coalesce(128)).pipeTo(
    new WritableStream({ write: (c) => void out.push(c) }),
  );
  assert.deepEqual(out.map((c) => c.length), [130, 305, 291, 7]);
  assert.deepEqual(
    out.flatMap((c) => [...c]),
    input.flatMap((c) => [...c]),
  );
});
