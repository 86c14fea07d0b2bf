/**
 * A failed checkout gives one line (exit 1, no "Uncaught", no "internal error")
 * and removes what it wrote; a damaged object never reaches the user.
 */
import assert from "node:assert/strict";
import { sha256 } from "../src/util/digest.ts";
import { type CliResult, deltaship, deltashipProcess, tempDir } from "./helpers/cli.ts";
import { noise } from "./helpers/data.ts";
import { writeImage } from "./helpers/oci.ts";
import { buildTar, type TarSpec } from "./helpers/tar.ts";
import { withTmpfs } from "./helpers/full_disk.ts";
import { objectHex, objectPathOf } from "./helpers/objects.ts";

/** Pulls an image of one layer of `entries` as `app` into a new repository; returns the repository. */
async function pulled(dir: string, entries: TarSpec[]): Promise<string> {
  await writeImage(`${dir}/l`, { tag: "t", layers: [{ tar: buildTar(entries) }] });
  const repo = `${dir}/repo`;
  const r = await deltaship(repo, "pull", `oci:${dir}/l:t`, "app");
  assert.equal(r.code, 0, r.stderr);
  return repo;
}

const objectPath = objectPathOf;

/** Flips one byte of an object, keeping its size. */
function corrupt(path: string, at: number): void {
  const bytes = Deno.readFileSync(path);
  bytes[at] ^= 0x20;
  Deno.writeFileSync(path, bytes);
}

/** Exit 1 and one short line matching `message`, no stack, no "Uncaught", no "internal error". */
function assertOneLine(r: CliResult, message: RegExp): void {
  assert.equal(r.code, 1, `exit status; stderr: ${r.stderr}`);
  assert.equal(r.stderr.trim().split("\n").length, 1, `one line: ${r.stderr}`);
  assert.match(r.stderr.trimEnd(), message);
  assert.doesNotMatch(r.stderr, /Uncaught|internal error|^\s+at /m);
  assert.ok(r.stderr.length < 400, `short: ${r.stderr.length} characters`);
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("two missing objects: one line naming one of them, the new directory removed", async () => {
  await using tmp = await tempDir();
  // A copy started after the first failure was recorded used to be left unawaited: "Uncaught (in promise)".
  const entries: TarSpec[] = [{ path: "a", content: "first missing" }];
  for (let i = 0; i < 40; i++) entries.push({ path: `d${i}/`, type: "dir" });
  entries.push({ path: "b", content: "second missing" }); // met once the first failure is known
  for (let i = 0; i < 20; i++) entries.push({ path: `f${i}`, content: `present ${i}` });
  const repo = await pulled(tmp.path, entries);
  await Deno.remove(objectPath(repo, "first missing"));
  await Deno.remove(objectPath(repo, "second missing"));
  for (const extra of [[], ["--hardlink"]]) {
    const r = await deltashipProcess(["--repo", repo, "checkout", ...extra, "app", `${tmp.path}/co`]);
    assertOneLine(r, /^deltaship: object [0-9a-f]{64} is missing from the repository; run fsck$/);
    assert.ok(!exists(`${tmp.path}/co`), "the checkout directory is removed");
  }
});

Deno.test("--force over existing contents: a failure removes what the checkout added, keeps the rest", async () => {
  await using tmp = await tempDir();
  const repo = await pulled(tmp.path, [
    { path: "keep/", type: "dir" },
    { path: "keep/added", content: "added" },
    { path: "new/", type: "dir" },
    { path: "new/file", content: "new file" },
    { path: "z-missing", content: "missing" },
  ]);
  await Deno.remove(objectPath(repo, "missing"));
  const co = `${tmp.path}/co`;
  await Deno.mkdir(`${co}/keep`, { recursive: true });
  await Deno.writeTextFile(`${co}/keep/mine`, "mine");
  const r = await deltaship(repo, "checkout", "--force", "app", co);
  assertOneLine(r, /is missing from the repository/);
  assert.deepEqual([...Deno.readDirSync(co)].map((e) => e.name), ["keep"]);
  assert.deepEqual([...Deno.readDirSync(`${co}/keep`)].map((e) => e.name), ["mine"]);
});

Deno.test("a damaged object (same size): checkout and checkout --hardlink fail naming it, nothing left", async () => {
  await using tmp = await tempDir();
  const big = noise(5 << 20, 3); // several copy chunks
  const repo = await pulled(tmp.path, [
    { path: "etc/", type: "dir" },
    { path: "etc/small", content: "small and fine" },
    { path: "etc/big.bin", content: big },
  ]);
  const object = objectPath(repo, big);
  corrupt(object, (2 << 20) + 17);
  const before = Deno.readFileSync(object);
  for (const extra of [[], ["--hardlink"]]) {
    const r = await deltaship(repo, "checkout", ...extra, "app", `${tmp.path}/co`);
    assertOneLine(
      r,
      new RegExp(
        `^deltaship: object for /etc/big\\.bin is damaged \\(run deltaship fsck\\): digest mismatch: expected ${
          objectHex(big)
        }, got [0-9a-f]{64}$`,
      ),
    );
    assert.ok(!exists(`${tmp.path}/co`), `${extra}: the checkout directory is removed`);
  }
  assert.deepEqual(Deno.readFileSync(object), before, "the object itself is left alone");
  // An intact image still checks out, with --hardlink too.
  const ok = await pulled(`${tmp.path}/ok`, [{ path: "f", content: big }, { path: "g", content: big }]);
  for (const extra of [[], ["--hardlink"]]) {
    const r = await deltaship(ok, "checkout", ...extra, "app", `${tmp.path}/ok/co${extra.length}`);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(sha256(Deno.readFileSync(`${tmp.path}/ok/co${extra.length}/g`)), sha256(big));
  }
});

Deno.test("layer DIFF_ID of a damaged layer: the stream is written, exit 1 naming the layer", async () => {
  await using tmp = await tempDir();
  const big = noise(2 << 20, 4);
  const tar = buildTar([{ path: "big.bin", content: big }]);
  await writeImage(`${tmp.path}/l`, { tag: "t", layers: [{ tar }] });
  const repo = `${tmp.path}/repo`;
  assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/l:t`)).code, 0);
  corrupt(objectPath(repo, big), 1000);
  const diffId = sha256(tar);
  const r = await deltaship(repo, "layer", diffId);
  assert.equal(r.stdoutBytes.length, tar.length, "the tar is streamed out whole");
  assertOneLine(r, new RegExp(`^deltaship: layer ${diffId} rebuilt from the repository is damaged.*digest mismatch`));
});

Deno.test("a 5,000-character symlink target: one short line naming the entry, no internal error", async () => {
  await using tmp = await tempDir();
  const repo = await pulled(tmp.path, [
    { path: "file", content: "x" },
    { path: "long-link", type: "symlink", linkname: "t", pax: { linkpath: "t".repeat(5000) } },
  ]);
  const r = await deltaship(repo, "checkout", "app", `${tmp.path}/co`);
  assertOneLine(
    r,
    /^deltaship: cannot check out symlink \/long-link -> t+…t+ \(5000 characters\) into .*: file name too long$/,
  );
  assert.ok(!exists(`${tmp.path}/co`));
});

Deno.test("ENOSPC: checkout into a full filesystem gives one line and leaves nothing in it", async (t) => {
  await using tmp = await tempDir();
  const entries: TarSpec[] = [];
  for (let i = 0; i < 6; i++) entries.push({ path: `data/f${i}`, content: noise(400 << 10, 10 + i) });
  entries.push({ path: "data/f9", content: noise(5 << 20, 19) }); // streamed in chunks
  const repo = await pulled(tmp.path, entries);
  await withTmpfs("ENOSPC checkout test", tmp.path, "1m", async (mnt) => {
    for (const dest of [`${mnt}/co`, mnt]) {
      await t.step(dest === mnt ? "into the mount itself" : "into a new directory", async () => {
        const r = await deltashipProcess(["--repo", repo, "checkout", "app", dest]);
        assertOneLine(r, /^deltaship: cannot check out \/data\/f\d into .*: no space left on device/);
        assert.deepEqual([...Deno.readDirSync(mnt)], [], "nothing left in the mount");
      });
    }
  });
});

Deno.test("a known OS error anywhere is one short line, the over-long path shortened, no internal error", async () => {
  await using tmp = await tempDir();
  const repo = await pulled(tmp.path, [{ path: "f", content: "x" }]);
  const long = `${tmp.path}/${"n".repeat(5000)}`;
  for (const args of [["export", "app", `oci:${long}`], ["checkout", "app", long]]) {
    const r = await deltaship(repo, ...args);
    assertOneLine(r, /^deltaship: file name too long: .*n…n/);
  }
});

Deno.test("an object longer or shorter than recorded fails the checkout naming the file", async () => {
  await using tmp = await tempDir();
  const big = noise(3 << 20, 6);
  const repo = await pulled(tmp.path, [{ path: "small", content: "small content" }, { path: "big", content: big }]);
  for (const [name, content, change] of [["small", "small content", "grow"], ["big", big, "shrink"]] as const) {
    const object = objectPath(repo, content);
    const bytes = Deno.readFileSync(object);
    Deno.writeFileSync(object, change === "grow" ? new Uint8Array([...bytes, 0x21]) : bytes.subarray(0, -1));
    const r = await deltaship(repo, "checkout", "app", `${tmp.path}/co`);
    assertOneLine(r, new RegExp(`^deltaship: object for /${name} is damaged \\(run deltaship fsck\\): size mismatch`));
    assert.ok(!exists(`${tmp.path}/co`));
    Deno.writeFileSync(object, bytes);
  }
});
