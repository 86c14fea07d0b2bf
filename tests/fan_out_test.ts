import assert from "node:assert/strict";
import { fanOutSlots } from "../src/ops/fan_out.ts";

Deno.test("fan-out: one thread per item up to the jobs, and one alone when the largest item dominates", () => {
  assert.equal(fanOutSlots(4, [10, 10, 10]), 3);
  assert.equal(fanOutSlots(2, [10, 10, 10]), 2);
  assert.equal(fanOutSlots(2, []), 1);
  // The far corpus's delta pull: a 35 MB layer beside 2 MB and 0.8 MB ones.
  assert.equal(fanOutSlots(2, [809_551, 2_180_128, 35_038_502], 4), 1);
  assert.equal(fanOutSlots(2, [809_551, 2_180_128, 35_038_502]), 2, "only when asked");
  // The largest only three times the rest: the others are worth a worker.
  assert.equal(fanOutSlots(2, [30, 10, 10, 10], 4), 2);
  assert.equal(fanOutSlots(2, [40, 5, 5], 4), 1, "exactly four times the rest");
});
