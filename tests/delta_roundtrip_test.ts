import assert from "node:assert/strict";
import { sha256 } from "../src/util/digest.ts";
import { deltaship, tempDir } from "./helpers/cli.ts";
import { checkDelta, pullDelta } from "./helpers/delta.ts";
import { writeImage } from "./helpers/oci.ts";
import { randomPair } from "./helpers/random_images.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

const SEEDS = [1, 2, 3, 4, 5, 6];

for (const seed of SEEDS) {
  Deno.test(`round trip, seed ${seed}: random trees -> create-delta -> pull old + delta -> the new image`, async () => {
    await using tmp = await tempDir();
    const repo = `${tmp.path}/repo`;
    const pair = randomPair(seed);
    await writeImage(`${tmp.path}/img`, { tag: "old", layers: pair.oldLayers.map((tar) => ({ tar })) });
    const neu = await writeImage(`${tmp.path}/img`, {
      tag: "new",
      layers: pair.newLayers.map((tar, i) => ({ tar, compression: i % 2 ? "zstd" as const : "gzip" as const })),
    });
    const r = await deltaship(
      repo,
      "--json",
      "--jobs",
      "2",
      "create-delta",
      `oci:${tmp.path}/img:old`,
      `oci:${tmp.path}/img:new`,
      `oci-archive:${tmp.path}/delta.tar`,
    );
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout);
    assert.equal(result.target, neu.manifest);
    const checked = await checkDelta(repo, `oci-archive:${tmp.path}/delta.tar`);
    // Pull old + delta into a client's repository: exactly the new image.
    await pullDelta(`${tmp.path}/client`, `oci:${tmp.path}/img:old`, `oci-archive:${tmp.path}/delta.tar`, {
      manifest: neu.manifest,
      diffIds: neu.diffIds,
    });
    assert.deepEqual(checked.target.manifestBytes, neu.manifestBytes);
    assert.deepEqual(checked.target.configBytes, neu.configBytes);
    assert.deepEqual(checked.target.diffIds, neu.diffIds);
    // Every Open names a regular file of the old image's merged view (modelled
    // independently of deltaship's own rootfs), readable by anyone.
    for (const decoded of checked.decoded.values()) {
      for (const path of decoded.opens) {
        const node = pair.oldView.get(path);
        assert.equal(node?.type, "file", `Open ${path} is a file of the old merged view`);
      }
    }
    // A delta made of real differences: it is smaller than the new layers it replaces.
    const changed = result.layers.filter((l: Json) => l.shipped !== "reused");
    assert.ok(changed.length >= 1);
    assert.ok(result.stats.layerBytes <= result.stats.originalBytes, JSON.stringify(result.stats));
    // Layers the old image has are not shipped.
    for (const l of result.layers.filter((l: Json) => l.shipped === "reused")) {
      assert.ok(pair.oldLayers.some((t) => sha256(t) === l.diffId));
    }
  });
}
