import assert from "node:assert/strict";
import { compressBlock, compressInBlocks } from "../src/compression/block_compress.ts";
import { sha256 } from "../src/util/digest.ts";
import { concat } from "../src/util/streams.ts";
import { deltaship, tempDir } from "./helpers/cli.ts";
import { haveTools, run } from "./helpers/interop.ts";
import { sampleTar, writeImage } from "./helpers/oci.ts";
import { buildTar } from "./helpers/tar.ts";
import { describeTree } from "./helpers/tree.ts";
import { referenceOptions, umociUnpack } from "./helpers/unpack.ts";

const skopeo = (...args: string[]) => run("skopeo", "--insecure-policy", ...args);

Deno.test({
  name: "interop: exports pass skopeo inspect and copy, and unpack with umoci to the source's tree",
  ignore: !haveTools("export interop", "skopeo", "umoci"),
  async fn() {
    await using tmp = await tempDir();
    const T = 1_650_000_000;
    const src = await writeImage(`${tmp.path}/src`, {
      tag: "v1",
      layers: [
        { tar: sampleTar("base") },
        {
          tar: buildTar([
            { path: "etc/", type: "dir", mtime: T },
            { path: "etc/.wh.motd", content: "" },
            { path: "etc/new", content: "new\n", mode: 0o600, mtime: T + 1 },
            { path: "usr/bin/tool-hard2", type: "hardlink", linkname: "usr/bin/tool" },
            { path: "big.bin", content: new Uint8Array(3 << 20).map((_, i) => (i * 31) % 251), mtime: T + 2 },
          ]),
        },
      ],
    });
    await umociUnpack(`${tmp.path}/src`, "v1", `${tmp.path}/reference`);
    const reference = await describeTree(`${tmp.path}/reference`, referenceOptions());
    const repo = `${tmp.path}/repo`;
    assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/src:v1`, "app")).code, 0);
    assert.equal((await deltaship(repo, "checkout", "app", `${tmp.path}/checkout`)).code, 0);
    assert.deepEqual(await describeTree(`${tmp.path}/checkout`, referenceOptions()), reference);

    for (const compression of ["gzip", "zstd", "none"]) {
      const dir = `${tmp.path}/${compression}`;
      const archive = `${tmp.path}/${compression}.tar`;
      const digests = [];
      for (const dest of [`oci:${dir}:t`, `oci-archive:${archive}:t`]) {
        const r = await deltaship(repo, "--json", "-j", "2", "export", "app", dest, "--compression", compression);
        assert.equal(r.code, 0, r.stderr);
        const result = JSON.parse(r.stdout);
        assert.equal(result.config, src.config);
        const inspected = JSON.parse(await skopeo("inspect", dest));
        assert.equal(inspected.Digest, result.manifest, dest);
        assert.deepEqual(inspected.Layers, result.layers.map((l: { digest: string }) => l.digest));
        const config = await skopeo("inspect", "--config", "--raw", dest);
        assert.equal(sha256(config), src.config, dest);
        digests.push(result.manifest);
      }
      assert.equal(digests[0], digests[1], "directory and archive exports are the same image");
      // skopeo copies it on to another layout: unchanged, or (zstd, which umoci 0.4 cannot read)
      // recompressed with gzip, which decodes every zstd frame with Go's decoder.
      const copy = `${tmp.path}/copy-${compression}`;
      const recompress = compression === "zstd" ? ["--dest-compress-format", "gzip"] : [];
      await skopeo("copy", ...recompress, `oci-archive:${archive}:t`, `oci:${copy}:t`);
      await skopeo("copy", `oci:${dir}:t`, `oci:${tmp.path}/copy2-${compression}:t`);
      const copied = JSON.parse(await skopeo("inspect", `oci:${tmp.path}/copy2-${compression}:t`));
      // (skopeo compresses uncompressed layers when it copies, so only compressed ones keep the digest)
      if (compression !== "none") assert.equal(copied.Digest, digests[0]);
      await umociUnpack(copy, "t", `${tmp.path}/unpacked-${compression}`);
      assert.deepEqual(
        await describeTree(`${tmp.path}/unpacked-${compression}`, referenceOptions()),
        reference,
        compression,
      );
    }
  },
});

Deno.test({
  name: "interop: gzip(1) and zstd(1) decode the block-compressed layers",
  ignore: !haveTools("compression interop", "gzip", "zstd"),
  async fn() {
    await using tmp = await tempDir();
    const input = new Uint8Array(5 * (1 << 20) + 123).map((_, i) => (i % 7 === 0 ? (i * 2654435761) >>> 24 : i >> 9));
    for (const format of ["gzip", "zstd"] as const) {
      const parts = [];
      for await (
        const c of compressInBlocks([input], { format, inFlight: 2, run: (job) => Promise.resolve(compressBlock(job)) })
      ) parts.push(c);
      const ext = format === "gzip" ? "gz" : "zst";
      await Deno.writeFile(`${tmp.path}/x.${ext}`, concat(parts));
      await run(format, "-t", `${tmp.path}/x.${ext}`);
      await run(format, "-d", "-f", `${tmp.path}/x.${ext}`);
      assert.equal(sha256(await Deno.readFile(`${tmp.path}/x`)), sha256(input), format);
      await Deno.remove(`${tmp.path}/x`);
    }
  },
});
