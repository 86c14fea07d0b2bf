import assert from "node:assert/strict";
import { PairBuffers, RETAIN } from "../src/tardiff/pair_buffers.ts";

Deno.test("PairBuffers keeps small buffers for the next pair and frees big ones when the pair is spent", () => {
  const buffers = new PairBuffers();
  const small = buffers.bytes("source", 1000);
  const again = buffers.bytes("source", 600);
  assert.equal(again.buffer, small.buffer, "a kept buffer is reused");
  assert.equal(again.length, 600);
  const ints = buffers.ints("source", 10); // the same slot name, another kind: its own buffer
  assert.notEqual(ints.buffer, small.buffer);

  const big = buffers.bytes("target", RETAIN + 1);
  big[RETAIN] = 1;
  buffers.spent();
  assert.equal(big.length, 0, "a buffer too big to keep is freed once its pair is spent");
  assert.equal(small.length, 1000, "kept buffers survive spent()");

  const bigger = buffers.bytes("source", 2000);
  assert.equal(small.length, 0, "a kept buffer too small for the next pair is freed, not left for the collector");
  buffers.release();
  assert.equal(bigger.length, 0);
  assert.equal(ints.length, 0, "release frees every buffer");
  assert.equal(buffers.bytes("source", 10).length, 10, "and the buffers can be used again");
});
