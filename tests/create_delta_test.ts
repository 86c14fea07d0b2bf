import assert from "node:assert/strict";
import { DeltaAnnotation, DeltaContent } from "../src/delta/annotations.ts";
import { TARDIFF_MEDIA_TYPE } from "../src/tardiff/format.ts";
import { deltaship, tempDir } from "./helpers/cli.ts";
import { checkDelta, pullDelta } from "./helpers/delta.ts";
import { haveTools, run } from "./helpers/interop.ts";
import { packArchive, writeImage } from "./helpers/oci.ts";
import { pushImage, startRegistry } from "./helpers/registry.ts";
import { buildTar } from "./helpers/tar.ts";

const FIXTURES = new URL("../testdata/oci-delta/", import.meta.url).pathname;
const CASES = ["basic", "edits", "whiteouts", "fallback"];

// deno-lint-ignore no-explicit-any
type Json = any;

function readJson(path: string): Json {
  return JSON.parse(Deno.readTextFileSync(path));
}

/** The manifest of the single image in a layout. */
function layoutManifest(dir: string): { digest: string; doc: Json; bytes: Uint8Array } {
  const index = readJson(`${dir}/index.json`);
  const digest = index.manifests.at(-1).digest;
  const bytes = Deno.readFileSync(`${dir}/blobs/sha256/${digest.slice(7)}`);
  return { digest, doc: JSON.parse(new TextDecoder().decode(bytes)), bytes };
}

/** Asserts the repository is as a failed command must leave it: fsck clean, no temporary files. */
async function assertClean(repo: string): Promise<void> {
  const fsck = await deltaship(repo, "fsck");
  assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
  assert.deepEqual([...Deno.readDirSync(`${repo}/tmp`)], []);
}

for (const name of CASES) {
  Deno.test(`create-delta on the ${name} fixture: same artifact structure as the reference, layers rebuild`, async () => {
    await using tmp = await tempDir();
    const repo = `${tmp.path}/repo`;
    const fixture = `${FIXTURES}${name}`;
    const expected = readJson(`${fixture}/expected.json`);
    assert.equal((await deltaship(repo, "pull", `oci:${fixture}/old:old`)).code, 0);
    const r = await deltaship(
      repo,
      "--json",
      "create-delta",
      "repo:old",
      `oci:${fixture}/new:new`,
      `oci:${tmp.path}/delta`,
    );
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout);
    assert.equal(result.target, expected.new_manifest);

    const ref = readJson(`${fixture}/delta/blobs/sha256/${expected.delta_manifest.slice(7)}`);
    const mine = layoutManifest(`${tmp.path}/delta`);
    assert.equal(mine.digest, result.manifest);
    // Field by field: everything but the tar-diff blobs themselves matches the reference.
    assert.deepEqual(Object.keys(mine.doc), Object.keys(ref));
    for (const key of ["schemaVersion", "mediaType", "artifactType", "config", "subject", "annotations"]) {
      assert.deepEqual(mine.doc[key], ref[key], key);
    }
    assert.equal(mine.doc.layers.length, ref.layers.length);
    for (const [i, want] of ref.layers.entries()) {
      const got = mine.doc.layers[i];
      assert.deepEqual(Object.keys(got), Object.keys(want));
      assert.deepEqual(got.annotations, want.annotations, `layer entry ${i}`);
      const c = want.annotations[DeltaAnnotation.content];
      if (c !== DeltaContent.imageLayer) {
        assert.deepEqual(got, want, `layer entry ${i}`);
        continue;
      }
      // A changed layer ships as whichever is smaller: our tar-diff or the original blob.
      const outcome = result.layers.find((l: Json) => l.digest === want.annotations[DeltaAnnotation.to]);
      if (outcome.tarDiffSize < outcome.originalSize) {
        assert.equal(got.mediaType, TARDIFF_MEDIA_TYPE);
        assert.equal(got.size, outcome.tarDiffSize);
      } else {
        assert.equal(got.digest, want.annotations[DeltaAnnotation.to]);
        assert.equal(got.size, outcome.originalSize);
      }
    }
    const checked = await checkDelta(repo, `oci:${tmp.path}/delta`);
    assert.equal(checked.target.diffIds.join(), expected.diff_ids.join());
    // deltaship's own engine, from a client's repository that holds only the old image.
    await pullDelta(`${tmp.path}/client`, `oci:${fixture}/old:old`, `oci:${tmp.path}/delta`, {
      manifest: expected.new_manifest,
      diffIds: expected.diff_ids,
    });
    assert.equal(readJson(`${tmp.path}/delta/oci-layout`).imageLayoutVersion, "1.0.0");
    await assertClean(repo);
  });
}

/** Text that compresses well, and much better at zstd level 19 than at level 1. */
function words(seed: number, n: number): string {
  const vocab = ["delta", "layer", "image", "patch", "source", "target", "manifest", "config", "blob", "tar"];
  let x = seed;
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out.push(vocab[x % vocab.length] + (x % 7 === 0 ? ".\n" : ""));
  }
  return out.join(" ");
}

Deno.test("create-delta from archives to an archive: sources pulled untagged, repo: forms, original blobs", async () => {
  await using tmp = await tempDir();
  const repo = `${tmp.path}/repo`;
  const base = buildTar([{ path: "etc/os-release", content: "ID=test\n" }]);
  await writeImage(`${tmp.path}/old`, { tag: "old", layers: [{ tar: base }] });
  const fresh = buildTar([{ path: "usr/share/doc/words.txt", content: words(1, 60000) }]);
  await writeImage(`${tmp.path}/new`, {
    tag: "new",
    layers: [{ tar: base }, { tar: fresh, compression: "zstd", level: 19 }],
  });
  await packArchive(`${tmp.path}/old`, `${tmp.path}/old.tar`);
  await packArchive(`${tmp.path}/new`, `${tmp.path}/new.tar`);
  const r = await deltaship(
    repo,
    "--json",
    "create-delta",
    "--zstd-level",
    "1",
    `oci-archive:${tmp.path}/old.tar:old`,
    `oci-archive:${tmp.path}/new.tar`,
    `${tmp.path}/delta.tar`,
  );
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout);
  assert.equal(result.output, `oci-archive:${tmp.path}/delta.tar`);
  assert.match(r.stderr, /pulling oci-archive:.*old\.tar:old into the repository/);
  // Both images are in the repository now, under no name.
  const images = JSON.parse((await deltaship(repo, "--json", "images")).stdout);
  assert.equal(images.length, 2);
  assert.deepEqual(images.flatMap((i: Json) => i.tags), []);
  // A brand-new layer whose zstd -19 blob beats a level-1 tar-diff ships as that blob.
  const layer = result.layers[1];
  assert.equal(layer.shipped, "original");
  assert.ok(layer.originalSize <= layer.tarDiffSize);
  const checked = await checkDelta(repo, `oci-archive:${tmp.path}/delta.tar`);
  const pulled = await pullDelta(
    `${tmp.path}/client`,
    `oci-archive:${tmp.path}/old.tar:old`,
    `oci-archive:${tmp.path}/delta.tar`,
    {
      manifest: result.target,
      diffIds: checked.target.diffIds,
    },
  );
  assert.deepEqual(pulled, { layersRebuilt: 0, layersImported: 1 });
  const entry = checked.layers.get(layer.digest)!;
  assert.equal(entry.digest, layer.digest);
  assert.equal(entry.mediaType, "application/vnd.oci.image.layer.v1.tar+zstd");
  assert.equal(result.stats.layersOriginal, 1);
  assert.equal(result.stats.layersReused, 1);

  // The same from images named in the repository, by digest: no original blobs to ship.
  const again = await deltaship(
    repo,
    "--json",
    "create-delta",
    `repo:@${result.source}`,
    `repo:@${result.target.slice(0, 20)}`,
    `oci-archive:${tmp.path}/delta2.tar`,
  );
  assert.equal(again.code, 0, again.stderr);
  const second = JSON.parse(again.stdout);
  assert.equal(second.layers[1].shipped, "tar-diff");
  await checkDelta(repo, `oci-archive:${tmp.path}/delta2.tar`);
  await assertClean(repo);
});

Deno.test("create-delta --stats and an existing layout: deltas added under their tags", async () => {
  await using tmp = await tempDir();
  const repo = `${tmp.path}/repo`;
  const fixture = `${FIXTURES}basic`;
  const out = `${tmp.path}/deltas`;
  const r1 = await deltaship(
    repo,
    "create-delta",
    "-s",
    `oci:${fixture}/old:old`,
    `oci:${fixture}/new:new`,
    `oci:${out}:v1`,
  );
  assert.equal(r1.code, 0, r1.stderr);
  assert.match(r1.stdout, /^Created delta oci:.*deltas:v1 \(/);
  assert.match(r1.stdout, /old image: 2 layers; new image: 3 layers/);
  assert.match(r1.stdout, /layers reused: 1; layers diffed: 2/);
  assert.match(r1.stdout, /saved: .* \(-?\d+ bytes, -?[\d.]+%\)/);
  assert.match(r1.stdout, /LAYER\s+DIFF_ID\s+SHIPPED/);
  const r2 = await deltaship(
    repo,
    "create-delta",
    "repo:@" + readJson(`${fixture}/expected.json`).new_manifest,
    `oci:${fixture}/old:old`,
    `oci:${out}:back`,
  );
  assert.equal(r2.code, 0, r2.stderr);
  const index = readJson(`${out}/index.json`);
  assert.deepEqual(index.manifests.map((m: Json) => m.annotations["org.opencontainers.image.ref.name"]), [
    "v1",
    "back",
  ]);
  await checkDelta(repo, `oci:${out}:v1`);
  await checkDelta(repo, `oci:${out}:back`);
});

Deno.test("create-delta failures: one clear line, nothing written, repository unchanged", async () => {
  await using tmp = await tempDir();
  const repo = `${tmp.path}/repo`;
  const fixture = `${FIXTURES}basic`;
  assert.equal((await deltaship(repo, "pull", `oci:${fixture}/old:old`)).code, 0);
  const cases: [string[], number, RegExp][] = [
    [["repo:nope", "repo:old", `${tmp.path}/d.tar`], 1, /no image tagged "nope" in the repository/],
    [["repo:old", `oci:${tmp.path}/missing:new`, `${tmp.path}/d.tar`], 1, /missing/],
    [
      ["repo:old", "repo:old", "docker://127.0.0.1:1/x:y"],
      1,
      /^deltaship: docker:\/\/127\.0\.0\.1:1\/x:y: HEAD http:\/\/127\.0\.0\.1:1\/v2\/x\/blobs\/sha256:\w+ failed \(5 tries\)/,
    ],
    [
      ["repo:old", "repo:old", `${tmp.path}/d.tar`, "--zstd-level", "0"],
      2,
      /--zstd-level must be an integer from 1 to 19/,
    ],
    [["repo:old", "repo:old", `oci:${tmp.path}/notalayout`], 2, /non-empty directory that is not an OCI layout/],
    [["repo:", "repo:old", `${tmp.path}/d.tar`], 2, /expected repo:NAME or repo:@sha256/],
    [["repo:old", "repo:old"], 2, /expected OLD NEW OUT, got 2 arguments/],
  ];
  await Deno.mkdir(`${tmp.path}/notalayout`);
  await Deno.writeTextFile(`${tmp.path}/notalayout/file`, "x");
  for (const [args, code, message] of cases) {
    const r = await deltaship(repo, "create-delta", ...args);
    assert.equal(r.code, code, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  }
  assert.deepEqual([...Deno.readDirSync(tmp.path)].map((e) => e.name).sort(), ["notalayout", "repo"]);
  await assertClean(repo);
});

Deno.test("--ignore-source-prefix keeps files under sysroot/ostree/ out of the sources", async () => {
  await using tmp = await tempDir();
  const repo = `${tmp.path}/repo`;
  const blob = Uint8Array.from({ length: 40000 }, (_, i) => (i * 7) & 0xff);
  // The only copy of the content lives under sysroot/ostree/.
  await writeImage(`${tmp.path}/img`, {
    tag: "old",
    layers: [{ tar: buildTar([{ path: "sysroot/ostree/repo/objects/ab/cdef.file", content: blob }]) }],
  });
  await writeImage(`${tmp.path}/img`, {
    tag: "new",
    layers: [{ tar: buildTar([{ path: "usr/bin/app", content: blob }]) }],
  });
  const opens: Record<string, string[]> = {};
  for (const [label, extra] of [["default", []], ["none", ["--ignore-source-prefix", ""]]] as const) {
    const r = await deltaship(
      repo,
      "create-delta",
      `oci:${tmp.path}/img:old`,
      `oci:${tmp.path}/img:new`,
      `oci:${tmp.path}/${label}`,
      ...extra,
    );
    assert.equal(r.code, 0, r.stderr);
    const d = await checkDelta(repo, `oci:${tmp.path}/${label}`);
    opens[label] = [...d.decoded.values()].flatMap((x) => x.opens);
  }
  assert.deepEqual(opens.default, []);
  assert.deepEqual(opens.none, ["sysroot/ostree/repo/objects/ab/cdef.file"]);
});

Deno.test({
  name: "interop: skopeo reads the delta artifact from oci: and oci-archive: output",
  ignore: !haveTools("skopeo delta interop", "skopeo"),
  async fn() {
    await using tmp = await tempDir();
    const repo = `${tmp.path}/repo`;
    const fixture = `${FIXTURES}whiteouts`;
    for (const out of [`oci:${tmp.path}/d:delta`, `oci-archive:${tmp.path}/d.tar:delta`]) {
      const r = await deltaship(
        repo,
        "--json",
        "create-delta",
        `oci:${fixture}/old:old`,
        `oci:${fixture}/new:new`,
        out,
      );
      assert.equal(r.code, 0, r.stderr);
      const raw = await run("skopeo", "inspect", "--raw", out);
      assert.equal(JSON.parse(raw).artifactType, "application/vnd.io.github.containers.oci-delta.v1");
      await run("skopeo", "--insecure-policy", "copy", "--preserve-digests", out, `oci:${tmp.path}/copy:x`);
      const copied = layoutManifest(`${tmp.path}/copy`);
      assert.equal(copied.digest, JSON.parse(r.stdout).manifest);
      await Deno.remove(`${tmp.path}/copy`, { recursive: true });
    }
  },
});

Deno.test("a renamed and edited file is found by content when no name leads to it", async () => {
  await using tmp = await tempDir();
  const repo = `${tmp.path}/repo`;
  let x = 5;
  const data = Uint8Array.from({ length: 60000 }, () => (x = (x * 1103515245 + 12345) >>> 0) >>> 24);
  const changed = new Uint8Array(data.length + 10);
  changed.set(data.subarray(0, 30000));
  changed.set(new TextEncoder().encode("0123456789"), 30000); // an insertion
  changed.set(data.subarray(30000), 30010);
  const decoy = Uint8Array.from({ length: 59000 }, (_, i) => (i * 13) & 0xff);
  await writeImage(`${tmp.path}/img`, {
    tag: "old",
    layers: [{
      tar: buildTar([
        { path: "opt/a/data-7f3a.bin", content: data },
        { path: "opt/a/other-0000.bin", content: decoy },
      ]),
    }],
  });
  await writeImage(`${tmp.path}/img`, {
    tag: "new",
    layers: [{ tar: buildTar([{ path: "srv/blob-91c2.dat", content: changed }]) }],
  });
  const r = await deltaship(
    repo,
    "--json",
    "create-delta",
    `oci:${tmp.path}/img:old`,
    `oci:${tmp.path}/img:new`,
    `oci:${tmp.path}/d`,
  );
  assert.equal(r.code, 0, r.stderr);
  const d = await checkDelta(repo, `oci:${tmp.path}/d`);
  const [decoded] = d.decoded.values();
  assert.deepEqual(decoded.opens, ["opt/a/data-7f3a.bin"]);
  assert.ok(JSON.parse(r.stdout).layers[0].tarDiffSize < 2000, r.stdout);
});

Deno.test({
  name: "create-delta from a registry: docker:// images in, the delta pushed back and pulled by a client",
  ignore: !haveTools("create-delta registry round trip", "docker-registry", "skopeo"),
  async fn() {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    const fixture = `${FIXTURES}whiteouts`;
    await pushImage(`oci:${fixture}/old:old`, `docker://${reg.host}/app:old`);
    await pushImage(`oci:${fixture}/new:new`, `docker://${reg.host}/app:new`);
    const r = await deltaship(
      `${tmp.path}/ci`,
      "--json",
      "create-delta",
      `docker://${reg.host}/app:old`,
      `docker://${reg.host}/app:new`,
      `oci-archive:${tmp.path}/delta.tar`,
    );
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout);
    const expected = readJson(`${fixture}/expected.json`);
    assert.equal(result.target, expected.new_manifest);
    await pushImage(`oci-archive:${tmp.path}/delta.tar`, `docker://${reg.host}/app:old-to-new`);
    await pullDelta(`${tmp.path}/client`, `docker://${reg.host}/app:old`, `docker://${reg.host}/app:old-to-new`, {
      manifest: expected.new_manifest,
      diffIds: expected.diff_ids,
    });
  },
});

Deno.test("Docker schema 2 images, and a delta between an image and itself (everything reused)", async () => {
  await using tmp = await tempDir();
  const repo = `${tmp.path}/repo`;
  const base = buildTar([{ path: "etc/motd", content: "hello\n".repeat(100) }]);
  const app = (v: string) => buildTar([{ path: "usr/bin/app", content: `binary ${v} `.repeat(5000) }]);
  await writeImage(`${tmp.path}/img`, { tag: "old", docker: true, layers: [{ tar: base }, { tar: app("1") }] });
  const neu = await writeImage(`${tmp.path}/img`, {
    tag: "new",
    docker: true,
    layers: [{ tar: base }, { tar: app("2") }],
  });
  const r = await deltaship(
    repo,
    "--json",
    "create-delta",
    `oci:${tmp.path}/img:old`,
    `oci:${tmp.path}/img:new`,
    `oci:${tmp.path}/d`,
  );
  assert.equal(r.code, 0, r.stderr);
  const doc = layoutManifest(`${tmp.path}/d`).doc;
  assert.equal(doc.layers[0].mediaType, "application/vnd.docker.distribution.manifest.v2+json");
  assert.equal(doc.layers[1].mediaType, "application/vnd.docker.container.image.v1+json");
  assert.equal(doc.subject.mediaType, "application/vnd.docker.distribution.manifest.v2+json");
  await pullDelta(`${tmp.path}/client`, `oci:${tmp.path}/img:old`, `oci:${tmp.path}/d`, {
    manifest: neu.manifest,
    diffIds: neu.diffIds,
  });

  const same = await deltaship(
    repo,
    "--json",
    "create-delta",
    "repo:@" + neu.manifest,
    `oci:${tmp.path}/img:new`,
    `oci:${tmp.path}/same`,
  );
  assert.equal(same.code, 0, same.stderr);
  const result = JSON.parse(same.stdout);
  assert.equal(result.stats.layersReused, 2);
  assert.equal(result.stats.layersDiffed, 0);
  const sameDoc = layoutManifest(`${tmp.path}/same`).doc;
  assert.equal(sameDoc.layers.length, 2); // the embedded manifest and config only
  assert.deepEqual(JSON.parse(sameDoc.annotations[DeltaAnnotation.reusedDiffId]), neu.diffIds);
});
