import assert from "node:assert/strict";
import { bench } from "../bench/main.ts";
import { countReads, dataRead } from "../bench/measure.ts";
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

Deno.test("bench read counting: data files and TCP sockets count, the runtime's own reads do not", () => {
  for (const fd of ["/work/r/objects/ab/cdef", "/tmp/x/blobs/sha256/12ab", "TCP:[127.0.0.1:40000->127.0.0.1:5000]"]) {
    assert.ok(dataRead(fd), fd);
  }
  for (
    const fd of [
      "/work/wt/src/tardiff/apply.ts",
      "/work/wt/deno.lock",
      "/root/.cache/deno/v8_code_cache_v2",
      "/proc/self/status",
      "/usr/lib/node_modules/deno/deno",
      "pipe:[1234]",
      "UNIX:[99]",
    ]
  ) {
    assert.ok(!dataRead(fd), fd);
  }
});

Deno.test({
  name: "bench read counting: strace counts a command's data reads",
  ignore: !haveTools("bench read counting", "strace"),
  async fn() {
    await using tmp = await tempDir();
    const file = `${tmp.path}/data.bin`;
    await Deno.writeFile(file, new Uint8Array(3 * 65536));
    const counts = await countReads([["dd", `if=${file}`, "of=/dev/null", "bs=65536"]]);
    assert.ok(counts.data >= 3 && counts.data <= 5, `dd of 3 blocks: ${counts.data} data reads`);
    assert.ok(counts.all >= counts.data);
  },
});
