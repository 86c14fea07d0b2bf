/**
 * `oci/documents.ts`: parsing manifests, indexes and configs costs a bounded
 * amount of memory whatever the document holds (issue 20 item 6), and what is
 * parsed is still kept byte for byte.
 */
import assert from "node:assert/strict";
import { LimitError } from "../src/errors.ts";
import {
  checkJsonCost,
  MAX_DOCUMENT,
  MAX_JSON_DEPTH,
  MAX_JSON_VALUES,
  parseImageConfig,
  parseJson,
} from "../src/oci/documents.ts";
import { sha256 } from "../src/util/digest.ts";
import { deltaship, tempDir } from "./helpers/cli.ts";
import { bloatedConfig, writeImageWithConfig } from "./helpers/documents.ts";
import { assertUnchangedAfterFailure, repoFiles } from "./helpers/failure.ts";
import { sampleTar } from "./helpers/oci.ts";
import { measuredRun } from "./helpers/process.ts";

const MiB = 2 ** 20;
const enc = new TextEncoder();

function refused(text: string, message: RegExp): void {
  assert.throws(
    () => checkJsonCost(enc.encode(text), "doc"),
    (e) => e instanceof LimitError && message.test(e.message),
  );
}

Deno.test("checkJsonCost: the value and depth budgets are exact; strings and escapes are not counted", () => {
  const values = (n: number) => `[${"0,".repeat(n - 2)}0]`; // n values: the array and n-1 numbers
  checkJsonCost(enc.encode(values(MAX_JSON_VALUES)), "doc");
  refused(values(MAX_JSON_VALUES + 1), /^doc holds more than 100000 JSON values/);
  // Keys count: an object of n/2 members is n+1 values.
  const members = (n: number) => `{${Array.from({ length: n }, (_, i) => `"k${i}":0`).join(",")}}`;
  checkJsonCost(enc.encode(members((MAX_JSON_VALUES - 1) / 2 | 0)), "doc");
  refused(members(MAX_JSON_VALUES / 2), /more than 100000 JSON values/);
  checkJsonCost(enc.encode("[".repeat(MAX_JSON_DEPTH) + "]".repeat(MAX_JSON_DEPTH)), "doc");
  refused(
    "[".repeat(MAX_JSON_DEPTH + 1) + "]".repeat(MAX_JSON_DEPTH + 1),
    /^doc nests objects and arrays more than 64/,
  );
  // Structure inside strings is text: a string of a million commas and brackets is one value.
  const quoted = JSON.stringify(`,:[{\\"`.repeat(200_000));
  checkJsonCost(enc.encode(`[${quoted},${quoted}]`), "doc");
  // An escaped backslash before a quote ends the string; an escaped quote does not.
  checkJsonCost(enc.encode(`["\\\\", ${"[".repeat(MAX_JSON_DEPTH - 1)}${"]".repeat(MAX_JSON_DEPTH - 1)}]`), "doc");
  refused(`["\\"${"[".repeat(MAX_JSON_DEPTH)}", ${"[".repeat(MAX_JSON_DEPTH)}${"]".repeat(MAX_JSON_DEPTH)}]`, /nests/);
  // Size: refused before anything is read.
  assert.throws(
    () => parseJson(new Uint8Array(MAX_DOCUMENT + 1).fill(0x20), "big"),
    (e) =>
      e instanceof LimitError && /^big is 33554433 bytes, more than the 33554432 deltaship parses$/.test(e.message),
  );
});

Deno.test("parseImageConfig keeps only what deltaship reads", () => {
  const diffId = sha256(enc.encode("x"));
  const config = parseImageConfig(bloatedConfig([diffId], 1000), "config");
  assert.deepEqual(config, { architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [diffId] } });
});

Deno.test("a 33 MB config of empty objects: pull, inspect and fsck refuse it in one line, under 300 MiB", async () => {
  await using tmp = await tempDir();
  const tar = sampleTar("bloat");
  const diffIds = [sha256(tar)];
  const layout = `${tmp.path}/layout`;
  await writeImageWithConfig(layout, "ok", tar, bloatedConfig(diffIds, 10));
  const bomb = bloatedConfig(diffIds, 11_000_000); // 33 MB, under the 32 MiB document limit
  assert.ok(bomb.length > 32_000_000 && bomb.length < MAX_DOCUMENT, String(bomb.length));
  const bombImage = await writeImageWithConfig(layout, "bomb", tar, bomb);
  const repo = `${tmp.path}/repo`;
  assert.equal((await deltaship(repo, "pull", `oci:${layout}:ok`, "ok")).code, 0);

  const oneLine = (r: { code: number; stderr: string; peakRss: number }, what: string) => {
    console.log(`  ${what}: exit ${r.code}, peak ${(r.peakRss / MiB).toFixed(0)} MiB`);
    assert.ok(r.peakRss < 300 * MiB, `${what}: peak RSS ${(r.peakRss / MiB).toFixed(0)} MiB`);
    assert.equal(r.code, 1, `${what}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`config ${bombImage.config} holds more than 100000 JSON values`));
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  };
  const before = repoFiles(repo, ["blobs", "images", "tags"]);
  oneLine(await measuredRun(["--repo", repo, "pull", `oci:${layout}:bomb`, "bomb"]), "pull");
  await assertUnchangedAfterFailure(repo, before);

  // A repository that already holds such an image (stored by an older deltaship): plant its
  // documents, record and tag beside the good image, which shares its layer.
  const ok = JSON.parse(await Deno.readTextFile(`${repo}/images/sha256/${(await okManifest(repo)).slice(7)}.json`));
  for (const digest of [bombImage.manifest, bombImage.config]) {
    await Deno.copyFile(`${layout}/blobs/sha256/${digest.slice(7)}`, `${repo}/blobs/sha256/${digest.slice(7)}`);
  }
  const record = { ...ok, manifest: bombImage.manifest, config: bombImage.config };
  await Deno.writeTextFile(`${repo}/images/sha256/${bombImage.manifest.slice(7)}.json`, JSON.stringify(record));
  await Deno.writeTextFile(`${repo}/tags/bomb`, `${bombImage.manifest}\n`);
  oneLine(await measuredRun(["--repo", repo, "inspect", "bomb"]), "inspect");
  const fsck = await measuredRun(["--repo", repo, "fsck"]);
  console.log(`  fsck: exit ${fsck.code}, peak ${(fsck.peakRss / MiB).toFixed(0)} MiB`);
  assert.ok(fsck.peakRss < 300 * MiB, `fsck: peak RSS ${(fsck.peakRss / MiB).toFixed(0)} MiB`);
  assert.equal(fsck.code, 1);
  assert.match(fsck.stdout + fsck.stderr, new RegExp(`config ${bombImage.config} holds more than 100000 JSON values`));
  // The exact bytes are still there to be read.
  const raw = await deltaship(repo, "inspect", "bomb", "--config");
  assert.equal(raw.code, 0);
  assert.equal(sha256(raw.stdoutBytes), bombImage.config);
});

async function okManifest(repo: string): Promise<string> {
  return (await Deno.readTextFile(`${repo}/tags/ok`)).trim();
}

Deno.test("a large legitimate config (just under the value budget, escapes, non-ASCII) is pulled and kept byte for byte", async () => {
  await using tmp = await tempDir();
  const tar = sampleTar("history");
  const history = Array.from({ length: 14_000 }, (_, i) => ({
    created: "2026-01-01T00:00:00Z",
    created_by: `/bin/sh -c echo "step ${i}" \\ ünïcödé € ${"[{,:}]".repeat(3)}`,
    empty_layer: i % 2 === 0,
  }));
  const text = JSON.stringify(
    {
      architecture: "amd64",
      os: "linux",
      config: { Env: ["PATH=/usr/bin"], Labels: { "org.example": '\u0000\u001f\\"' } },
      rootfs: { type: "layers", diff_ids: [sha256(tar)] },
      history,
    },
    null,
    "\t",
  );
  const bytes = enc.encode(text);
  checkJsonCost(bytes, "config"); // 14,000 entries of 7 values: within the budget
  const image = await writeImageWithConfig(`${tmp.path}/layout`, "big", tar, bytes);
  const repo = `${tmp.path}/repo`;
  const r = await deltaship(repo, "pull", `oci:${tmp.path}/layout:big`, "big");
  assert.equal(r.code, 0, r.stderr);
  const raw = await deltaship(repo, "inspect", "big", "--config");
  assert.deepEqual(raw.stdoutBytes, bytes);
  assert.equal(image.config, sha256(bytes));
  assert.equal((await deltaship(repo, "fsck")).code, 0);
});
