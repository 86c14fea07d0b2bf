import assert from "node:assert/strict";
import { Yielder } from "../src/util/yielder.ts";

/** Spins a microtask-only loop for 300 ms; returns when a timer set at its start fired (ms), if it did. */
async function spin(yielder?: Yielder): Promise<number | undefined> {
  let fired: number | undefined;
  const start = performance.now();
  setTimeout(() => (fired = performance.now() - start), 0);
  while (performance.now() - start < 300) {
    await Promise.resolve();
    await yielder?.yieldIfDue();
  }
  return fired;
}

Deno.test("yielder: a microtask-only loop that calls it lets the event loop run (timers, signals) every interval", async () => {
  assert.equal(await spin(), undefined, "without it, a timer waits for the loop to end");
  const fired = await spin(new Yielder({ intervalMs: 20, every: 8 }));
  assert.ok(fired !== undefined && fired < 150, `the timer fired after ${fired} ms`);
});

Deno.test("yielder: it costs nothing between intervals (no promise to wait for)", async () => {
  const y = new Yielder({ intervalMs: 60_000, every: 4 });
  for (let i = 0; i < 1000; i++) assert.equal(y.yieldIfDue(), undefined);
  const due = new Yielder({ intervalMs: 0, every: 4 });
  const answers = [1, 2, 3, 4].map(() => due.yieldIfDue());
  assert.deepEqual(
    answers.map((a) => a instanceof Promise),
    [false, false, false, true],
    "the clock read every 4th call",
  );
  await answers[3];
});
