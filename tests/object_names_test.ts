/**
 * Objects are named by their fs-verity digest, as composefs names them: through
 * real pulls, every object's name (`objects/XX/<62 hex>`) equals what
 * `fsverity digest --compact` (Debian `fsverity`) prints for its bytes, for
 * contents around the block and tree-level boundaries and for every object of
 * the pulled fixture images; the layer records name objects by that digest.
 */
import assert from "node:assert/strict";
import { deltaship, tempDir } from "./helpers/cli.ts";
import { noise } from "./helpers/data.ts";
import { haveTools, run } from "./helpers/interop.ts";
import { writeImage } from "./helpers/oci.ts";
import { objectFiles } from "./helpers/objects.ts";
import { buildTar } from "./helpers/tar.ts";
import { layerEntries } from "../src/repo/layer_reader.ts";
import { Repository } from "../src/repo/repository.ts";
import { asDiffId } from "../src/util/digest.ts";

const MiB = 1 << 20;
/** Empty, one byte, one block -1/0/+1, the largest object gathered in memory and one past it, past two tree levels. */
const SIZES = [0, 1, 4095, 4096, 4097, MiB, MiB + 1, 64 * MiB + 1];
const FIXTURES = new URL("../testdata/oci-delta", import.meta.url).pathname;

/** `fsverity digest --compact` of each file, in order. */
async function fsverityDigests(paths: string[]): Promise<string[]> {
  return (await run("fsverity", "digest", "--compact", ...paths)).trim().split("\n");
}

Deno.test({
  name: "object names: equal `fsverity digest --compact` for contents of 0 B to 64 MiB + 1, through a real pull",
  ignore: !haveTools("object names", "fsverity"),
  async fn() {
    await using tmp = await tempDir();
    const big = noise(64 * MiB + 1, 0x0b1ec7); // every size is a prefix of it
    const files = SIZES.map((size) => ({ path: `f${size}`, content: big.subarray(0, size) }));
    const img = await writeImage(`${tmp.path}/l`, {
      tag: "sizes",
      layers: [{ tar: buildTar(files), compression: "none" }],
    });
    const repo = `${tmp.path}/repo`;
    const r = await deltaship(repo, "pull", `oci:${tmp.path}/l:sizes`, "sizes");
    assert.equal(r.code, 0, r.stderr);

    // The oracle's digest of each content, from files of exactly those bytes.
    for (const f of files) await Deno.writeFile(`${tmp.path}/${f.path}`, f.content);
    const oracle = await fsverityDigests(files.map((f) => `${tmp.path}/${f.path}`));

    const named = new Map<string, string | undefined>();
    const opened = await Repository.open(repo);
    try {
      for await (const e of layerEntries(opened, asDiffId(img.diffIds[0]))) named.set(e.entry.path, e.object);
    } finally {
      await opened.close();
    }
    for (const [i, f] of files.entries()) {
      const hex = named.get(f.path);
      if (f.content.length === 0) {
        assert.equal(hex, undefined, "an empty file has no object (composefs stores none either)");
        continue;
      }
      assert.equal(hex, oracle[i], `${f.path}: the record names the object by its fs-verity digest`);
      const path = `${repo}/objects/${hex!.slice(0, 2)}/${hex!.slice(2)}`;
      assert.equal(Deno.statSync(path).size, f.content.length, `${f.path}: stored at objects/XX/<62 hex>`);
    }
    const images = new Set(
      [...Deno.readDirSync(`${repo}/images/sha256`)].map((e) =>
        JSON.parse(Deno.readTextFileSync(`${repo}/images/sha256/${e.name}`)).composefs
      ),
    );
    const stored = objectFiles(repo).filter(([hex]) => !images.has(hex)); // but the image's composefs image
    assert.equal(images.size, 1);
    assert.deepEqual(stored.map(([hex]) => hex), oracle.slice(1).sort(), "no other object");
    assert.deepEqual(await fsverityDigests(stored.map(([, p]) => p)), stored.map(([hex]) => hex));
  },
});

Deno.test({
  name: "object names: every object of the pulled fixture images (plain and delta pulls) is its fs-verity digest",
  ignore: !haveTools("object names", "fsverity"),
  async fn() {
    await using tmp = await tempDir();
    const repo = `${tmp.path}/repo`;
    for (const name of ["basic", "edits", "whiteouts", "fallback"]) {
      for (const source of [`oci:${FIXTURES}/${name}/old:old`, `oci:${FIXTURES}/${name}/delta`]) {
        const r = await deltaship(repo, "pull", source, `${name}-${source.endsWith("delta") ? "new" : "old"}`);
        assert.equal(r.code, 0, r.stderr);
      }
    }
    const stored = objectFiles(repo);
    assert.ok(stored.length > 40, `${stored.length} objects`);
    assert.deepEqual(await fsverityDigests(stored.map(([, p]) => p)), stored.map(([hex]) => hex));
    const fsck = await deltaship(repo, "fsck");
    assert.equal(fsck.code, 0, fsck.stdout);
  },
});
