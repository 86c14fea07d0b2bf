/**
 * The upgrade of a version-1 repository (objects named by SHA-256) to version 2
 * (objects named by fs-verity digest): on the repository the deltaship before
 * fs-verity names made (testdata/repo-v1.tar.gz), through the `upgrade` command
 * and through the first command that writes; read-only commands refusing with
 * what to run; interrupted at many points and by SIGKILL, then resumed; damaged
 * objects; the leftovers of an upgrade killed at its very end; two at once.
 */
import assert from "node:assert/strict";
import { deltaship, deltashipCommand, deltashipProcess, tempDir } from "./helpers/cli.ts";
import { haveTools, run } from "./helpers/interop.ts";
import { downgradeToV1, unpackFixtureV1 } from "./helpers/repo_v1.ts";
import { objectFiles } from "./helpers/objects.ts";
import { writeImage } from "./helpers/oci.ts";
import { buildTar } from "./helpers/tar.ts";
import { noise } from "./helpers/data.ts";
import { Repository } from "../src/repo/repository.ts";
import { upgradeRepository } from "../src/repo/upgrade.ts";
import { readRecord, recordVersion } from "../src/repo/layer_record.ts";
import { sha256 } from "../src/util/digest.ts";
import type { ProgressSink } from "../src/util/progress.ts";

const FIXTURES = new URL("../testdata/oci-delta", import.meta.url).pathname;

/** The images of testdata/repo-v1.tar.gz, as its README lists them. */
const FIXTURE_IMAGES = {
  "basic-old": "sha256:8df5fabcce265afc1e620c82ef220dc45c919dc42ad71ba5a9163d24df072df2",
  "basic-new": "sha256:6b8f17c729ea321675100e76db9cc2059aa21f8eac6d4cbc9f040f5fdcb3670f",
  "edits-old": "sha256:7d68915ab9d02ac5be2fbe3644a0e8926b5ac91d4e84e2f1f678b5aa75392e83",
};

/** Pulls the images FIXTURE_IMAGES names, the way testdata/repo-v1.tar.gz was made, into `repo`. */
async function pullFixtureImages(repo: string): Promise<void> {
  for (
    const [source, name] of [
      [`oci:${FIXTURES}/basic/old:old`, "basic-old"],
      [`oci:${FIXTURES}/basic/delta`, "basic-new"],
      [`oci:${FIXTURES}/edits/old:old`, "edits-old"],
    ]
  ) assert.equal((await deltaship(repo, "pull", source, name)).code, 0);
}

const UPGRADE_HINT = /format version 1 \(objects named by SHA-256\); run 'deltaship upgrade'/;

/** Every file under `dir` (relative path → SHA-256 of its bytes), to tell whether anything changed. */
function snapshot(dir: string, skip: (rel: string) => boolean = () => false): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (path: string, rel: string) => {
    for (const e of Deno.readDirSync(path)) {
      const r = `${rel}${e.name}`;
      if (skip(r)) continue;
      if (e.isDirectory) {
        out.set(`${r}/`, "dir");
        walk(`${path}/${e.name}`, `${r}/`);
      } else out.set(r, sha256(Deno.readFileSync(`${path}/${e.name}`)));
    }
  };
  walk(dir, "");
  return out;
}

/** The diff_ids of every layer record of a repository. */
function layerIds(repo: string): string[] {
  return [...Deno.readDirSync(`${repo}/layers/sha256`)].map((e) => `sha256:${e.name}`).sort();
}

/**
 * Asserts that `repo` is a clean version-2 repository holding `layers`: format
 * file, no old objects left, every object named by `fsverity digest --compact`
 * of its bytes (when that tool is here), fsck clean, every layer rebuilding to
 * its diff_id.
 */
async function assertUpgraded(repo: string, layers: string[]): Promise<void> {
  const format = JSON.parse(Deno.readTextFileSync(`${repo}/deltaship-repo.json`));
  assert.equal(format.format, "deltaship-repo");
  assert.equal(format.version, 2);
  assert.equal(typeof format.verity, "boolean");
  assert.equal(await Deno.stat(`${repo}/objects/sha256`).catch(() => null), null, "objects/sha256 removed");
  const objects = objectFiles(repo);
  assert.ok(objects.length > 0);
  if (haveTools("upgrade: object names", "fsverity")) {
    const listed = (await run("fsverity", "digest", "--compact", ...objects.map(([, p]) => p))).trim().split("\n");
    assert.deepEqual(listed, objects.map(([hex]) => hex), "each object is named by its fs-verity digest");
  }
  const fsck = await deltaship(repo, "fsck");
  assert.equal(fsck.code, 0, fsck.stdout);
  assert.deepEqual(layerIds(repo), layers);
  for (const id of layers) {
    const r = await deltaship(repo, "layer", id);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha256(r.stdoutBytes), id, `layer ${id} rebuilds to its diff_id`);
  }
  assert.deepEqual([...Deno.readDirSync(`${repo}/tmp`)], [], "no temporary files left");
}

Deno.test("upgrade: read-only commands on a version-1 repository say what to run and change nothing", async () => {
  await using tmp = await tempDir();
  const repo = await unpackFixtureV1(tmp.path);
  const before = snapshot(repo);
  const layer = layerIds(repo)[0];
  for (
    const args of [
      ["images"],
      ["fsck"],
      ["inspect", "basic-old"],
      ["layer", layer],
      ["checkout", "basic-old", `${tmp.path}/out`],
      ["export", "basic-old", `oci:${tmp.path}/layout`],
      ["gc", "--dry-run"],
    ]
  ) {
    const r = await deltaship(repo, ...args);
    assert.equal(r.code, 1, `${args[0]}: ${r.stderr}`);
    assert.match(r.stderr, UPGRADE_HINT, args[0]);
    assert.equal(r.stderr.split("\n").length, 2, `${args[0]}: one line`);
    assert.equal(r.stdout, "");
  }
  assert.deepEqual(snapshot(repo), before, "the repository is as it was");
  assert.equal(await Deno.stat(`${tmp.path}/out`).catch(() => null), null);
});

Deno.test("upgrade: `deltaship upgrade` on the version-1 repository deltaship made: progress, summary, same images", async () => {
  await using tmp = await tempDir();
  const repo = await unpackFixtureV1(tmp.path);
  const layers = layerIds(repo);
  const documents = snapshot(repo, (rel) => !/^(blobs|images|tags)(\/|$)/.test(rel));
  const r = await deltaship(repo, "--progress", "always", "upgrade");
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stdout,
    /^Upgraded the repository to format version 2 in \d+\.\d s: 5 layer records rewritten, 37 objects \(\d+(\.\d+)? kB\) renamed by fs-verity digest(, fs-verity enabled on each)?\n$/,
  );
  assert.match(r.stderr, /upgrade +repository .*(upgraded)/, "a progress line");
  assert.deepEqual(snapshot(repo, (rel) => !/^(blobs|images|tags)(\/|$)/.test(rel)), documents, "documents unchanged");
  await assertUpgraded(repo, layers);
  const images = JSON.parse((await deltaship(repo, "--json", "images")).stdout) as {
    tags: string[];
    manifest: string;
  }[];
  assert.deepEqual(
    Object.fromEntries(images.map((i) => [i.tags.join(), i.manifest])),
    FIXTURE_IMAGES,
  );
  const co = await deltaship(repo, "checkout", "edits-old", `${tmp.path}/co`);
  assert.equal(co.code, 0, co.stderr);
  const again = await deltaship(repo, "upgrade");
  assert.deepEqual([again.code, again.stdout], [0, "The repository is at format version 2 already\n"]);
});

Deno.test("upgrade: the first command that writes upgrades the repository, with a note on stderr", async () => {
  await using tmp = await tempDir();
  const repo = await unpackFixtureV1(tmp.path);
  const layers = layerIds(repo);
  const r = await deltaship(repo, "tag", "basic-old", "again");
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `again -> ${FIXTURE_IMAGES["basic-old"]}\n`);
  assert.match(r.stderr, /^Upgraded the repository to format version 2 in .*5 layer records rewritten, 37 objects/);
  assert.equal(r.stderr.split("\n").length, 2);
  await assertUpgraded(repo, layers);
  // A delta pull rebuilds from the upgraded objects, found by their new names.
  const expected = JSON.parse(Deno.readTextFileSync(`${FIXTURES}/edits/expected.json`));
  const pull = await deltaship(repo, "--json", "pull", `oci:${FIXTURES}/edits/delta`, "edits-new");
  assert.equal(pull.code, 0, pull.stderr);
  assert.equal(JSON.parse(pull.stdout).manifest, expected.new_manifest);
  assert.equal((await deltaship(repo, "fsck")).code, 0);
});

Deno.test("upgrade: tests/helpers/repo_v1.ts makes the version-1 repository that deltaship made from the same pulls", async () => {
  await using tmp = await tempDir();
  const fixture = await unpackFixtureV1(tmp.path);
  const repo = `${tmp.path}/made`;
  await pullFixtureImages(repo);
  await downgradeToV1(repo);
  // Image records differ in their "created" time only.
  const content = (rel: string) => /^(objects|layers|blobs|tags)\//.test(rel) || rel === "deltaship-repo.json";
  assert.deepEqual(snapshot(repo, (rel) => !content(rel)), snapshot(fixture, (rel) => !content(rel)));
});

/** A progress sink that throws (as if the process were killed there) after `n` reads. */
function killedAfter(n: number): ProgressSink {
  let reads = 0;
  return {
    start() {},
    advance() {
      if (++reads >= n) throw new Error("killed");
    },
    finish() {},
  };
}

Deno.test("upgrade: interrupted after any number of objects, the next command that writes resumes it", async () => {
  await using tmp = await tempDir();
  for (const cut of [1, 6, 12, 20, 30, 36]) {
    const dir = `${tmp.path}/cut-${cut}`;
    await Deno.mkdir(dir);
    const path = await unpackFixtureV1(dir);
    const layers = layerIds(path);
    const repo = await Repository.open(path, { legacy: true });
    try {
      await assert.rejects(upgradeRepository(repo, killedAfter(cut)), /killed/);
    } finally {
      await repo.close();
    }
    const versions = await Promise.all(layers.map((id) => recordVersion(`${path}/layers/sha256/${id.slice(7)}`)));
    assert.ok(versions.includes(1), `cut ${cut}: some records are still of format 1`);
    assert.equal(JSON.parse(Deno.readTextFileSync(`${path}/deltaship-repo.json`)).version, 1);
    const refused = await deltaship(path, "images");
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, UPGRADE_HINT);
    if (cut <= 20) { // a second interruption, before the resume that completes
      const again = await Repository.open(path, { legacy: true });
      try {
        await assert.rejects(upgradeRepository(again, killedAfter(3)), /killed/);
      } finally {
        await again.close();
      }
    }
    const r = await deltaship(path, "upgrade");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Upgraded the repository to format version 2/);
    await assertUpgraded(path, layers);
  }
});

Deno.test("upgrade: killed with SIGKILL midway, a version-1 repository is left that the next upgrade completes", async () => {
  await using tmp = await tempDir();
  const layers = Array.from({ length: 40 }, (_, i) => ({
    tar: buildTar([
      { path: `layer${i}/big.bin`, content: noise(1 << 20, 1000 + i) },
      { path: `layer${i}/small.txt`, content: `layer ${i}\n` },
    ]),
    compression: "none" as const,
  }));
  const img = await writeImage(`${tmp.path}/layout`, { tag: "big", layers });
  const repo = `${tmp.path}/repo`;
  assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/layout:big`, "big")).code, 0);
  await downgradeToV1(repo);
  const records = img.diffIds.map((id) => `${repo}/layers/sha256/${id.slice(7)}`);

  const child = deltashipCommand(["--repo", repo, "upgrade"]).spawn();
  const deadline = Date.now() + 60_000;
  for (;;) {
    const versions = await Promise.all(records.map(recordVersion));
    if (versions.includes(2)) break;
    assert.ok(Date.now() < deadline, "the upgrade never rewrote a record");
    await new Promise((r) => setTimeout(r, 2));
  }
  child.kill("SIGKILL");
  assert.equal((await child.status).signal, "SIGKILL");
  await child.stdout.cancel();
  await child.stderr.cancel();

  const versions = await Promise.all(records.map(recordVersion));
  assert.ok(versions.includes(1) && versions.includes(2), `killed midway: ${versions.join()}`);
  assert.equal(JSON.parse(Deno.readTextFileSync(`${repo}/deltaship-repo.json`)).version, 1);
  const refused = await deltashipProcess(["--repo", repo, "fsck"]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, UPGRADE_HINT);

  const r = await deltashipProcess(["--repo", repo, "upgrade"]);
  assert.equal(r.code, 0, r.stderr);
  const rewritten = Number(/(\d+) layer records? rewritten/.exec(r.stdout)?.[1]);
  assert.ok(rewritten > 0 && rewritten < 40, `the resumed upgrade rewrote only the rest (${rewritten})`);
  await assertUpgraded(repo, [...img.diffIds].sort());
});

Deno.test("upgrade: layers whose objects are missing or damaged are dropped and counted; pulling again restores them", async () => {
  await using tmp = await tempDir();
  const repo = await unpackFixtureV1(tmp.path);
  // basic's shared bottom layer: remove one of its objects. edits-old's one layer: damage its largest object.
  const basicOld = JSON.parse(
    Deno.readTextFileSync(`${repo}/images/sha256/${FIXTURE_IMAGES["basic-old"].slice(7)}.json`),
  );
  for await (const item of readRecord(`${repo}/layers/sha256/${basicOld.layers[0].diffId.slice(7)}`, 1)) {
    if (item.type !== "object") continue;
    Deno.removeSync(`${repo}/objects/sha256/${item.hex.slice(0, 2)}/${item.hex}`);
    break;
  }
  const objects = [...Deno.readDirSync(`${repo}/objects/sha256`)].flatMap((fan) =>
    [...Deno.readDirSync(`${repo}/objects/sha256/${fan.name}`)].map((e) =>
      `${repo}/objects/sha256/${fan.name}/${e.name}`
    )
  ).sort((a, b) => Deno.statSync(b).size - Deno.statSync(a).size);
  const biggest = Deno.readFileSync(objects[0]);
  biggest[100] ^= 1;
  Deno.writeFileSync(objects[0], biggest);
  const r = await deltaship(repo, "upgrade");
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stdout,
    /3 layer records rewritten, .*; 2 damaged layers dropped \(deltaship fsck names the images that need them\)\n$/,
  );
  const fsck = await deltaship(repo, "fsck");
  assert.equal(fsck.code, 1);
  const named = [...fsck.stdout.matchAll(/^image @(sha256:[0-9a-f]{64}): layer sha256:[0-9a-f]{64} is missing/gm)];
  assert.deepEqual(named.map((m) => m[1]).sort(), Object.values(FIXTURE_IMAGES).sort(), "the images that need them");
  // Repair: remove the images, pull them again.
  for (const name of Object.keys(FIXTURE_IMAGES)) assert.equal((await deltaship(repo, "rm", name)).code, 0);
  await pullFixtureImages(repo);
  const repaired = await deltaship(repo, "fsck");
  assert.equal(repaired.code, 0, repaired.stdout);
});

Deno.test("upgrade: the leftovers of an upgrade killed while removing the old objects go with the next write", async () => {
  await using tmp = await tempDir();
  const repo = await unpackFixtureV1(tmp.path);
  const layers = layerIds(repo);
  const saved = `${tmp.path}/old-objects`;
  await run("cp", "-a", `${repo}/objects/sha256`, saved);
  assert.equal((await deltaship(repo, "upgrade")).code, 0);
  await run("cp", "-a", saved, `${repo}/objects/sha256`); // as if the removal had not finished
  assert.equal((await deltaship(repo, "fsck")).code, 0, "fsck is clean meanwhile");
  assert.equal((await deltaship(repo, "images")).code, 0);
  const r = await deltaship(repo, "tag", "basic-new", "again");
  assert.deepEqual([r.code, r.stderr], [0, ""]);
  await assertUpgraded(repo, layers);
});

Deno.test("upgrade: two at once: one upgrades, the other finds it done", async () => {
  await using tmp = await tempDir();
  const repo = await unpackFixtureV1(tmp.path);
  const layers = layerIds(repo);
  const runs = await Promise.all([1, 2].map(() => deltashipProcess(["--repo", repo, "upgrade"])));
  for (const r of runs) assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(
    runs.map((r) => r.stdout.startsWith("Upgraded") ? "upgraded" : r.stdout.trim()).sort(),
    ["The repository is at format version 2 already", "upgraded"],
  );
  await assertUpgraded(repo, layers);
});
