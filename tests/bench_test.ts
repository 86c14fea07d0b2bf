import assert from "node:assert/strict";
import { bench } from "../bench/main.ts";
import { tempDir } from "./helpers/cli.ts";
import { haveTools } from "./helpers/interop.ts";

Deno.test({
  name: "bench suite runs its smoke case and writes results.json and report.md",
  ignore: !haveTools("bench smoke", "time"),
  async fn() {
    await using tmp = await tempDir();
    const code = await bench(["--case", "smoke", "--runs", "1", "--warmup", "0", "--out", tmp.path]);
    assert.equal(code, 0);
    const results = JSON.parse(await Deno.readTextFile(`${tmp.path}/results.json`));
    assert.equal(results.runs, 1);
    assert.equal(results.machine.cores, navigator.hardwareConcurrency);
    const smoke = results.results[0];
    assert.equal(smoke.name, "smoke");
    assert.ok(smoke.deltaship.wall.median > 0);
    assert.ok(smoke.deltaship.rssMiB.median > 10);
    // The floor was measured beside it (a real process takes time) and the ratio is the two medians'.
    assert.equal(smoke.floor.label, "cat of the layout");
    assert.ok(smoke.floor.wall.median > 0);
    assert.equal(smoke.floorRatio, smoke.deltaship.wall.median / smoke.floor.wall.median);
    const report = await Deno.readTextFile(`${tmp.path}/report.md`);
    assert.match(report, /^\| smoke \| \d+\.\d\d \(/m);
  },
});

Deno.test({
  name: "bench --out creates the directory it names when it does not exist yet",
  ignore: !haveTools("bench smoke", "time"),
  async fn() {
    await using tmp = await tempDir();
    const out = `${tmp.path}/not/yet`;
    const code = await bench(["--case", "smoke", "--runs", "1", "--warmup", "0", "--out", out]);
    assert.equal(code, 0);
    const results = JSON.parse(await Deno.readTextFile(`${out}/results.json`));
    assert.deepEqual(results.results.map((r: { name: string }) => r.name), ["smoke"]);
    assert.match(await Deno.readTextFile(`${out}/report.md`), /^\| smoke \| \d+\.\d\d \(/m);
  },
});
