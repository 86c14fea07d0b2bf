import assert from "node:assert/strict";
import { Repository } from "../src/repo/repository.ts";
import { DEFAULT_MAX_LAYER_SIZE } from "../src/repo/layer_writer.ts";
import { asDiffId, sha256 } from "../src/util/digest.ts";
import type { ImportTask } from "../src/repo/layer_import.ts";
import { openLayerPool } from "../src/ops/fan_out.ts";
import { tempDir } from "./helpers/cli.ts";
import { sampleTar } from "./helpers/oci.ts";

function importTask(tar: Uint8Array): ImportTask {
  const digest = sha256(tar);
  return {
    layer: { mediaType: "application/vnd.oci.image.layer.v1.tar", digest, size: tar.length, diffId: asDiffId(digest) },
    blob: ReadableStream.from([tar]),
    limits: { maxLayerSize: DEFAULT_MAX_LAYER_SIZE },
  };
}

Deno.test("worker pool: inline mode (size 1) runs tasks one at a time, in order, and stops after close", async () => {
  await using tmp = await tempDir();
  const repo = await Repository.open(`${tmp.path}/repo`);
  const pool = openLayerPool(repo, 1);
  assert.equal(pool.inline, true);
  const events: string[] = [];
  const runs = ["a", "b", "c"].map((seed) =>
    pool.run("import", () => {
      events.push(`start ${seed}`);
      return Promise.resolve(importTask(sampleTar(seed)));
    }, () => events.push(`data ${seed}`))
  );
  await Promise.all(runs);
  // Each task's work (its progress) happens before the next one is even made.
  assert.deepEqual(events, ["start a", "data a", "start b", "data b", "start c", "data c"]);
  // Queued inline tasks do not start once the pool is closed; the running one finishes.
  let started!: () => void;
  const isStarted = new Promise<void>((resolve) => (started = resolve));
  const first = pool.run("import", () => {
    started();
    return Promise.resolve(importTask(sampleTar("d")));
  });
  await isStarted;
  const queued = pool.run("import", () => {
    throw new Error("must not be made");
  });
  const refused = assert.rejects(queued, /worker pool closed/);
  pool.close();
  await first;
  await refused;
  await repo.close();
});

Deno.test("worker pool: workers (size 2) run tasks and report progress; warm() starts them early", async () => {
  await using tmp = await tempDir();
  const repo = await Repository.open(`${tmp.path}/repo`);
  const pool = openLayerPool(repo, 2);
  try {
    pool.warm();
    let progress = 0;
    const tars = ["x", "y", "z"].map((s) => sampleTar(s));
    const results = await Promise.all(
      tars.map((tar) => pool.run("import", () => Promise.resolve(importTask(tar)), (n) => (progress += n))),
    );
    assert.deepEqual(results.map((r) => r.tarSize), tars.map((t) => t.length));
    assert.equal(progress, tars.reduce((a, t) => a + t.length, 0));
    for (const tar of tars) assert.equal(await repo.hasLayer(asDiffId(sha256(tar))), true);
  } finally {
    pool.close();
    await repo.close();
  }
});

/** Importing an empty layer: a task that needs no input. */
function emptyTask(): ImportTask {
  const empty = sha256("");
  const layer = {
    mediaType: "application/vnd.oci.image.layer.v1.tar",
    digest: empty,
    size: 0,
    diffId: asDiffId(empty),
  };
  return { layer, blob: ReadableStream.from([]), limits: { maxLayerSize: DEFAULT_MAX_LAYER_SIZE } };
}

Deno.test("worker pool: a worker that cannot load fails its task; nothing hangs, and the inline slot still works", async () => {
  await using tmp = await tempDir();
  const broken = `${tmp.path}/broken_worker.ts`;
  await Deno.writeTextFile(broken, 'throw new Error("cannot load");\n');
  const repo = await Repository.open(`${tmp.path}/repo`);
  const pool = openLayerPool(repo, 2, {
    startWorker: () => new Worker(new URL(`file://${broken}`), { type: "module" }),
  });
  try {
    const tasks = [0, 1, 2].map(() => pool.run("import", () => Promise.resolve(emptyTask())));
    const outcomes = await Promise.allSettled(tasks);
    // The first task runs on the calling thread; the others meet broken workers (or, later, the free inline slot).
    assert.equal(outcomes[0].status, "fulfilled");
    const failed = outcomes.filter((o) => o.status === "rejected") as PromiseRejectedResult[];
    assert.ok(failed.length >= 1);
    for (const o of failed) assert.match(String(o.reason), /worker failed: /);
    // Without the calling thread's slot, every task goes to a (broken) worker.
    const workersOnly = openLayerPool(repo, 2, {
      useCallingThread: false,
      startWorker: () => new Worker(new URL(`file://${broken}`), { type: "module" }),
    });
    const all = await Promise.allSettled(
      [0, 1].map(() => workersOnly.run("import", () => Promise.resolve(emptyTask()))),
    );
    workersOnly.close();
    assert.deepEqual(all.map((o) => o.status), ["rejected", "rejected"]);
  } finally {
    pool.close();
    await repo.close();
  }
});

Deno.test("worker pool: workersOnly runs tasks in a worker even with a size of one (encoding cannot yield)", async () => {
  await using tmp = await tempDir();
  const repo = await Repository.open(`${tmp.path}/repo`);
  let started = 0;
  const worker = new URL("../src/ops/layer_worker.ts", import.meta.url);
  const pool = openLayerPool(repo, 1, {
    workersOnly: true,
    startWorker: () => (started++, new Worker(worker, { type: "module" })),
  });
  try {
    assert.equal(pool.inline, false);
    const tars = [sampleTar("p"), sampleTar("q")];
    for (const tar of tars) {
      const result = await pool.run("import", () => Promise.resolve(importTask(tar)));
      assert.equal(result.tarSize, tar.length);
      assert.equal(await repo.hasLayer(asDiffId(sha256(tar))), true);
    }
    assert.equal(started, 1, "one worker ran both tasks, one at a time");
  } finally {
    pool.close();
    await repo.close();
  }
});

Deno.test("worker pool: stop() fails the inputs of tasks in flight, waits for them to clean up, then closes", async () => {
  await using tmp = await tempDir();
  const repo = await Repository.open(`${tmp.path}/repo`);
  const pool = openLayerPool(repo, 2);
  // Two imports (one inline, one in a worker) whose blobs never end: only stop() can end them.
  const endless = () =>
    new ReadableStream<Uint8Array>({
      async pull(c) {
        await new Promise((r) => setTimeout(r, 20));
        c.enqueue(new Uint8Array(512)); // zero blocks: a tar that goes on and on
      },
    });
  const digest = sha256("never");
  const task = (): ImportTask => ({
    layer: { mediaType: "application/vnd.oci.image.layer.v1.tar", digest, size: 1 << 40, diffId: asDiffId(digest) },
    blob: endless(),
    limits: { maxLayerSize: DEFAULT_MAX_LAYER_SIZE },
  });
  const runs = [0, 1].map(() => pool.run("import", () => Promise.resolve(task())));
  const outcomes = Promise.allSettled(runs);
  await new Promise((r) => setTimeout(r, 300));
  const t0 = performance.now();
  await pool.stop(new Error("stopped by the test"));
  assert.ok(performance.now() - t0 < 5000, "stop() waited too long");
  assert.deepEqual((await outcomes).map((o) => o.status), ["rejected", "rejected"]);
  // Nothing of either layer was kept: no record, and their staging areas are gone.
  assert.deepEqual([...Deno.readDirSync(`${repo.root}/layers/sha256`)], []);
  assert.deepEqual([...Deno.readDirSync(repo.tempDir)], []);
  await repo.close();
});
