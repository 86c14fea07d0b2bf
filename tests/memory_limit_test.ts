/**
 * `--memory-limit` (and DELTASHIP_MEMORY_LIMIT) on pull, apply-delta and create-delta: sizes
 * parse as --max-layer-size's do, the limit turns into fewer layer threads and a
 * smaller dictionary budget (ops/memory_plan.ts), a pull under it gives the
 * right digests, and a version-2 tar-diff whose dictionary does not fit fails
 * in one line naming the file and the limit, leaving the repository as it was;
 * create-delta diffs no file too large for the limit.
 */
import assert from "node:assert/strict";
import { deltaship, deltashipProcess, runCli, tempDir } from "./helpers/cli.ts";
import { expectCleanFailure } from "./helpers/failure.ts";
import { checkLayers, expected, FIXTURES, FIXTURES_V2 } from "./helpers/fixtures.ts";
import {
  ENCODE_MEMORY_PER_BYTE,
  ENCODE_TASK_MEMORY,
  encodePlan,
  memoryPlan,
  TASK_MEMORY,
  WORKER_MEMORY,
} from "../src/ops/memory_plan.ts";
import { checkDelta, pullDelta } from "./helpers/delta.ts";
import { noise } from "./helpers/data.ts";
import { writeImage } from "./helpers/oci.ts";
import { buildTar } from "./helpers/tar.ts";
import { SOURCE_MEMORY } from "../src/delta/source_files.ts";

const MIB = 1 << 20;

Deno.test("memory limit: the plan fits threads and the dictionary budget into the limit", () => {
  assert.deepEqual(memoryPlan(undefined, 2), { jobs: 2, sourceMemory: SOURCE_MEMORY });
  const tight = memoryPlan(64 * MIB, 2);
  assert.deepEqual(tight, { jobs: 1, sourceMemory: 64 * MIB - TASK_MEMORY, limit: 64 * MIB });
  const roomy = memoryPlan(160 * MIB, 4);
  assert.equal(roomy.jobs, 3);
  assert.equal(roomy.jobs * TASK_MEMORY + (roomy.jobs - 1) * WORKER_MEMORY + roomy.sourceMemory, 160 * MIB);
  assert.deepEqual(memoryPlan(1024, 2), { jobs: 1, sourceMemory: 0, limit: 1024 }, "too small: one thread, no room");
  assert.equal(memoryPlan(8 * 2 ** 30, 2).sourceMemory, SOURCE_MEMORY, "never more than the default budget");
});

Deno.test("memory limit: sizes are bytes or KiB/MiB/GiB/TiB, from the option or the environment", async () => {
  await using tmp = await tempDir();
  const repo = `${tmp.path}/repo`;
  for (const bad of ["0", "-5", "12XB", "lots", "1e9"]) {
    const r = await deltaship(repo, "pull", "--memory-limit", bad, `oci:${tmp.path}/none`);
    assert.equal(r.code, 2, `${bad}: ${r.stderr}`);
    assert.match(r.stderr, /--memory-limit must be a size in bytes or with KiB, MiB, GiB or TiB/);
    const a = await deltaship(repo, "apply-delta", "--memory-limit", bad, `oci:${tmp.path}/none`, `oci:${tmp.path}/o`);
    assert.equal(a.code, 2, `apply-delta ${bad}: ${a.stderr}`);
  }
  const env = await runCli(["--repo", repo, "pull", `oci:${tmp.path}/none`], { DELTASHIP_MEMORY_LIMIT: "64 Mb" });
  assert.equal(env.code, 2, env.stderr);
  assert.match(env.stderr, /DELTASHIP_MEMORY_LIMIT must be a size/);
});

Deno.test("memory limit: pulls and delta pulls under 64MiB run on one thread and give the right digests", async () => {
  for (const [fixtures, name] of [[FIXTURES, "basic"], [FIXTURES_V2, "basic"]]) {
    await using tmp = await tempDir();
    const repo = `${tmp.path}/repo`;
    const want = await expected(name, fixtures);
    // The trace says how many threads each fan-out got: -j 2 asked, the limit allows one.
    const env = { DELTASHIP_MEMORY_TRACE: "1", DELTASHIP_MEMORY_LIMIT: "64MiB" };
    const old = await deltashipProcess(["--repo", repo, "-j", "2", "pull", `oci:${fixtures}${name}/old:old`], env);
    assert.equal(old.code, 0, old.stderr);
    assert.match(old.stderr, /memory \d\d\.\d{3} main fan-out of \d+ on 1 slots/);
    assert.doesNotMatch(old.stderr, /on 2 slots/);
    const r = await deltashipProcess(
      ["--repo", repo, "-j", "2", "--json", "pull", "--memory-limit", "64MiB", `oci:${fixtures}${name}/delta`, "new"],
      { DELTASHIP_MEMORY_TRACE: "1" },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /on 2 slots/);
    const out = JSON.parse(r.stdout);
    assert.equal(out.manifest, want.new_manifest);
    assert.equal(out.config, want.new_config);
    await checkLayers(repo, want.diff_ids);
    // Without the limit the same pull would take both threads.
    const free = await deltashipProcess([
      "--repo",
      `${tmp.path}/free`,
      "-j",
      "2",
      "pull",
      `oci:${fixtures}${name}/old:old`,
    ], {
      DELTASHIP_MEMORY_TRACE: "1",
    });
    assert.match(free.stderr, /on 2 slots/);
  }
});

Deno.test("memory limit: a version-2 dictionary that does not fit fails in one line, the repository unchanged", async () => {
  await using tmp = await tempDir();
  const repo = `${tmp.path}/repo`;
  const dir = `${FIXTURES_V2}basic`;
  assert.equal((await deltaship(repo, "pull", `oci:${dir}/old:old`)).code, 0);
  // 24 MiB is all one layer task takes: nothing is left for the 4 KiB dictionary.
  const message =
    /source file "data\/blob\.bin" needs 4096 bytes in memory, more than the 0-byte budget for source files that --memory-limit 24 MiB leaves; raise the limit or drop it$/m;
  await expectCleanFailure(repo, ["pull", "--memory-limit", "24MiB", `oci:${dir}/delta`, "new"], message);
  await expectCleanFailure(
    repo,
    ["apply-delta", `oci:${dir}/delta`, `oci:${tmp.path}/out`],
    /source file "data\/blob\.bin" needs 4096 bytes.*--memory-limit 24 MiB leaves/,
    { DELTASHIP_MEMORY_LIMIT: "24MiB" },
  );
  const ok = await deltaship(repo, "pull", "--memory-limit", "25MiB", `oci:${dir}/delta`, "new");
  assert.equal(ok.code, 0, ok.stderr);
});

Deno.test("memory limit: create-delta diffs no file whose pair would not fit; it goes out whole and the delta applies", async () => {
  await using tmp = await tempDir();
  const repo = `${tmp.path}/repo`;
  const big = noise(300_000, 7);
  const edited = big.slice();
  edited.fill(1, 150_000, 150_100);
  const small = new TextEncoder().encode("small file, changed\n".repeat(10));
  const same = noise(600_000, 8); // unchanged: a Copy, so the tar-diff stays smaller than the original blob
  await writeImage(`${tmp.path}/img`, {
    tag: "old",
    layers: [{
      tar: buildTar([{ path: "big.bin", content: big }, { path: "small.txt", content: small.subarray(9) }, {
        path: "same.bin",
        content: same,
      }]),
    }],
  });
  const target = await writeImage(`${tmp.path}/img`, {
    tag: "new",
    layers: [{
      tar: buildTar([{ path: "big.bin", content: edited }, { path: "small.txt", content: small }, {
        path: "same.bin",
        content: same,
      }]),
    }],
  });
  // Room for pairs up to 100 KiB: the 300 KB file is carried as data, the small one still diffed.
  const limit = `${ENCODE_TASK_MEMORY + ENCODE_MEMORY_PER_BYTE.full * 100 * 1024}`;
  const sizes: number[] = [];
  for (const args of [[], ["--memory-limit", limit]]) {
    const out = `oci:${tmp.path}/d${sizes.length}`;
    const r = await deltaship(
      repo,
      "--json",
      "create-delta",
      ...args,
      `oci:${tmp.path}/img:old`,
      `oci:${tmp.path}/img:new`,
      out,
    );
    assert.equal(r.code, 0, r.stderr);
    sizes.push(JSON.parse(r.stdout).layers[0].tarDiffSize);
    const decoded = [...(await checkDelta(repo, out)).decoded.values()][0];
    assert.deepEqual(
      decoded.opens.sort(),
      args.length ? ["same.bin", "small.txt"] : ["big.bin", "same.bin", "small.txt"],
    );
    await pullDelta(`${tmp.path}/check${sizes.length}`, `oci:${tmp.path}/img:old`, out, target);
  }
  assert.ok(sizes[0] < 10_000, `unlimited: big.bin bsdiffed (${sizes[0]} bytes)`);
  assert.ok(sizes[1] > 300_000, `limited: big.bin carried whole (${sizes[1]} bytes)`);
  assert.deepEqual(encodePlan(64 * MIB, 2), { jobs: 1, maxDiffSize: Math.floor(16 * MIB / 6) });
  assert.equal(encodePlan(undefined, 2).maxDiffSize, undefined);
});
