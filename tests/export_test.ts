import assert from "node:assert/strict";
import zlib from "node:zlib";
import { parseHeaderBlock } from "../src/tar/header.ts";
import { parseHeaderGroup } from "../src/tar/header_group.ts";
import { encodeHeader } from "../src/tar/header_writer.ts";
import { compressBlock, compressInBlocks, GZIP_BLOCK, ZSTD_BLOCK } from "../src/compression/block_compress.ts";
import { sha256 } from "../src/util/digest.ts";
import { concat } from "../src/util/streams.ts";
import { deltaship, tempDir } from "./helpers/cli.ts";
import { sampleTar, writeImage } from "./helpers/oci.ts";
import { buildTar } from "./helpers/tar.ts";
import { objectPathOf } from "./helpers/objects.ts";

const dec = new TextDecoder();

function noise(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = i % 3 === 0 ? x >>> 24 : (i >> 7) & 0xff; // part random, part compressible
  }
  return out;
}

async function collect(it: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts = [];
  for await (const c of it) parts.push(c);
  return concat(parts);
}

Deno.test("block compression: gzip and zstd decode to the input, identically for any parallelism", async () => {
  const sizes = [0, 1, GZIP_BLOCK - 1, GZIP_BLOCK, 2 * GZIP_BLOCK + 17, ZSTD_BLOCK + 5];
  for (const format of ["gzip", "zstd"] as const) {
    for (const size of sizes) {
      const input = noise(size, size + 1);
      const chunks = [input.subarray(0, size >> 1), input.subarray(size >> 1)];
      const outputs = [];
      for (const inFlight of [1, 4]) {
        const run = async (job: Parameters<typeof compressBlock>[0]) => {
          await new Promise((r) => setTimeout(r, Math.random() * 3)); // finish out of order
          return compressBlock(job);
        };
        outputs.push(await collect(compressInBlocks(chunks, { format, inFlight, run })));
      }
      assert.deepEqual(outputs[0], outputs[1], `${format} ${size}: depends on parallelism`);
      const back = format === "gzip" ? zlib.gunzipSync(outputs[0]) : zlib.zstdDecompressSync(outputs[0]);
      assert.equal(sha256(new Uint8Array(back)), sha256(input), `${format} ${size}`);
      if (format === "gzip") assert.deepEqual([...outputs[0].subarray(0, 3)], [0x1f, 0x8b, 8]);
    }
  }
});

Deno.test("archive headers: long names use PAX, sizes past 8 GiB base-256", () => {
  const long = `blobs/sha512/${"a".repeat(128)}`;
  const pax = encodeHeader({ name: long, size: 5 });
  assert.equal(pax.length, 3 * 512);
  assert.equal(parseHeaderGroup(pax, new Map()).path, long);
  const big = encodeHeader({ name: "blobs/sha256/x", size: 9 * 2 ** 30 });
  assert.equal(parseHeaderBlock(big).size, 9 * 2 ** 30);
  const dir = parseHeaderGroup(encodeHeader({ name: "blobs", size: 0, type: "dir" }), new Map());
  assert.deepEqual([dir.kind, dir.path, dir.mode], ["dir", "blobs", 0o755]);
});

/** Reads a layout's manifest for `tag`. */
function layoutManifest(dir: string, tag: string) {
  const index = JSON.parse(Deno.readTextFileSync(`${dir}/index.json`));
  const entry = index.manifests.find((m: { annotations?: Record<string, string> }) =>
    m.annotations?.["org.opencontainers.image.ref.name"] === tag
  );
  assert.ok(entry, `no ${tag} in ${dir}`);
  const bytes = Deno.readFileSync(`${dir}/blobs/sha256/${entry.digest.slice(7)}`);
  assert.equal(sha256(bytes), entry.digest);
  return { entry, manifest: JSON.parse(dec.decode(bytes)), index };
}

const LAYER_TYPE = {
  gzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  zstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  none: "application/vnd.oci.image.layer.v1.tar",
};

Deno.test("export to oci: rewrites the manifest, keeps the config bytes, and round-trips", async () => {
  await using tmp = await tempDir();
  const src = await writeImage(`${tmp.path}/src`, {
    tag: "v1",
    docker: true,
    layers: [{ tar: sampleTar("a") }, { tar: buildTar([{ path: "big", content: noise(3 << 20, 9) }]) }, {
      tar: sampleTar("a"),
    }],
  });
  const repo = `${tmp.path}/repo`;
  assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/src:v1`, "app")).code, 0);
  for (const compression of ["gzip", "zstd", "none"] as const) {
    const out = `${tmp.path}/out-${compression}`;
    const r = await deltaship(repo, "--json", "-j", "2", "export", "app", `oci:${out}`, "--compression", compression);
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout);
    const { entry, manifest } = layoutManifest(out, "app");
    assert.equal(entry.digest, result.manifest);
    assert.equal(entry.mediaType, "application/vnd.oci.image.manifest.v1+json");
    assert.equal(manifest.mediaType, "application/vnd.oci.image.manifest.v1+json");
    // A Docker config becomes an OCI config descriptor; its bytes (the image ID) are unchanged.
    assert.deepEqual(manifest.config, {
      mediaType: "application/vnd.oci.image.config.v1+json",
      digest: src.config,
      size: src.configBytes.length,
    });
    assert.deepEqual(Deno.readFileSync(`${out}/blobs/sha256/${src.config.slice(7)}`), src.configBytes);
    assert.equal(manifest.layers.length, 3);
    for (let i = 0; i < 3; i++) {
      const layer = manifest.layers[i];
      assert.equal(layer.mediaType, LAYER_TYPE[compression]);
      const blob = Deno.readFileSync(`${out}/blobs/sha256/${layer.digest.slice(7)}`);
      assert.equal(sha256(blob), layer.digest);
      assert.equal(blob.length, layer.size);
      const tar = compression === "gzip"
        ? zlib.gunzipSync(blob)
        : compression === "zstd"
        ? zlib.zstdDecompressSync(blob)
        : blob;
      assert.equal(sha256(new Uint8Array(tar)), src.diffIds[i]);
    }
    assert.equal(manifest.layers[0].digest, manifest.layers[2].digest); // the same layer, written once
    // Pulled back, it is the same image: same config, same layers.
    const back = await deltaship(`${tmp.path}/repo2`, "--json", "pull", `oci:${out}:app`, `back-${compression}`);
    assert.equal(back.code, 0, back.stderr);
    assert.equal(JSON.parse(back.stdout).config, src.config);
    assert.equal(JSON.parse(back.stdout).manifest, result.manifest);
  }
  assert.equal((await deltaship(`${tmp.path}/repo2`, "fsck")).code, 0);
});

Deno.test("export is reproducible: same bytes whatever -j", async () => {
  await using tmp = await tempDir();
  await writeImage(`${tmp.path}/src`, {
    tag: "v1",
    layers: [{ tar: buildTar([{ path: "big", content: noise(5 << 20, 3) }]) }, { tar: sampleTar("b") }],
  });
  const repo = `${tmp.path}/repo`;
  assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/src:v1`)).code, 0);
  for (const compression of ["gzip", "zstd"]) {
    const digests = [];
    for (const jobs of ["1", "3"]) {
      const file = `${tmp.path}/${compression}-${jobs}.tar`;
      const r = await deltaship(
        repo,
        "--json",
        "-j",
        jobs,
        "export",
        "v1",
        `oci-archive:${file}`,
        "--compression",
        compression,
      );
      assert.equal(r.code, 0, r.stderr);
      digests.push(JSON.parse(r.stdout).manifest);
      digests.push(sha256(Deno.readFileSync(file)));
    }
    assert.equal(digests[0], digests[2], compression);
    assert.equal(digests[1], digests[3], compression);
  }
});

Deno.test("export to oci-archive: a tar of a layout, index.json naming the tag", async () => {
  await using tmp = await tempDir();
  const src = await writeImage(`${tmp.path}/src`, { tag: "v1", layers: [{ tar: sampleTar("x") }] });
  const repo = `${tmp.path}/repo`;
  assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/src:v1`, "app")).code, 0);
  const r = await deltaship(repo, "--json", "export", "app", `oci-archive:${tmp.path}/img.tar:release`);
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout);
  assert.equal(result.tag, "release");
  await Deno.mkdir(`${tmp.path}/x`);
  const tar = await new Deno.Command("tar", { args: ["-xf", `${tmp.path}/img.tar`, "-C", `${tmp.path}/x`] }).output();
  assert.ok(tar.success, dec.decode(tar.stderr));
  const { entry, manifest } = layoutManifest(`${tmp.path}/x`, "release");
  assert.equal(entry.digest, result.manifest);
  assert.equal(manifest.config.digest, src.config);
  assert.deepEqual(
    JSON.parse(Deno.readTextFileSync(`${tmp.path}/x/oci-layout`)),
    { imageLayoutVersion: "1.0.0" },
  );
  // Nothing but the archive was left beside it.
  assert.deepEqual([...Deno.readDirSync(tmp.path)].map((e) => e.name).sort(), ["img.tar", "repo", "src", "x"]);
  // An image named by digest gets no tag unless DEST gives one.
  const untagged = await deltaship(repo, "export", `@${await manifestOf(repo, "app")}`, `oci:${tmp.path}/u`);
  assert.equal(untagged.code, 0, untagged.stderr);
  const index = JSON.parse(Deno.readTextFileSync(`${tmp.path}/u/index.json`));
  assert.equal(index.manifests.length, 1);
  assert.equal(index.manifests[0].annotations, undefined);
});

async function manifestOf(repo: string, tag: string): Promise<string> {
  return JSON.parse((await deltaship(repo, "--json", "inspect", tag)).stdout).manifest;
}

Deno.test("export into an existing layout keeps its other tags and replaces the same tag", async () => {
  await using tmp = await tempDir();
  const layout = `${tmp.path}/layout`;
  const other = await writeImage(layout, { tag: "other", layers: [{ tar: sampleTar("o") }] });
  await writeImage(layout, { tag: "app", layers: [{ tar: sampleTar("old") }] });
  await writeImage(`${tmp.path}/src`, { tag: "v2", layers: [{ tar: sampleTar("new") }] });
  const repo = `${tmp.path}/repo`;
  assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/src:v2`, "app")).code, 0);
  const r = await deltaship(repo, "--json", "export", "app", `oci:${layout}`);
  assert.equal(r.code, 0, r.stderr);
  const index = JSON.parse(Deno.readTextFileSync(`${layout}/index.json`));
  const tags = index.manifests.map((m: { annotations: Record<string, string>; digest: string }) => [
    m.annotations["org.opencontainers.image.ref.name"],
    m.digest,
  ]);
  assert.deepEqual(tags, [["other", other.manifest], ["app", JSON.parse(r.stdout).manifest]]);
  assert.equal((await deltaship(`${tmp.path}/r2`, "pull", `oci:${layout}:other`)).code, 0);
  assert.equal((await deltaship(`${tmp.path}/r2`, "pull", `oci:${layout}:app`)).code, 0);
  assert.deepEqual([...Deno.readDirSync(`${layout}`)].map((e) => e.name).sort(), ["blobs", "index.json", "oci-layout"]);
  assert.ok([...Deno.readDirSync(`${layout}/blobs/sha256`)].every((e) => !e.name.startsWith(".")));
});

/** Every path under `dir`, with sizes, to show a failure changed nothing. */
function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of Deno.readDirSync(`${dir}${rel}`)) {
      const st = Deno.lstatSync(`${dir}${rel}/${e.name}`);
      out.push(`${rel}/${e.name} ${st.isDirectory ? "dir" : `${st.size} ${st.mtime?.getTime()}`}`);
      if (st.isDirectory) walk(`${rel}/${e.name}`);
    }
  };
  walk("");
  return out.sort();
}

Deno.test("a failed export leaves no output: new layout, existing layout, archive", async () => {
  await using tmp = await tempDir();
  await writeImage(`${tmp.path}/src`, {
    tag: "v1",
    layers: [{ tar: sampleTar("ok") }, { tar: buildTar([{ path: "damaged", content: noise(2 << 20, 5) }]) }],
  });
  const repo = `${tmp.path}/repo`;
  assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/src:v1`, "app")).code, 0);
  // Damage one object in the repository: the rebuilt layer no longer hashes to its diff_id.
  const object = objectPathOf(repo, noise(2 << 20, 5));
  const bytes = Deno.readFileSync(object);
  bytes[12345] ^= 1;
  Deno.writeFileSync(object, bytes);

  const existing = `${tmp.path}/existing`;
  await writeImage(existing, { tag: "keep", layers: [{ tar: sampleTar("k") }] });
  const before = snapshot(existing);
  await Deno.mkdir(`${tmp.path}/empty`);
  const dests = [
    `oci:${tmp.path}/new`,
    `oci:${tmp.path}/empty`,
    `oci:${existing}:app`,
    `oci-archive:${tmp.path}/img.tar`,
  ];
  for (const dest of dests) {
    for (const jobs of ["1", "2"]) {
      const r = await deltaship(repo, "-j", jobs, "export", "app", dest);
      assert.equal(r.code, 1, dest);
      assert.match(
        r.stderr,
        /^deltaship: layer sha256:[0-9a-f]{64} rebuilt from the repository \(run deltaship fsck\): digest mismatch/,
      );
    }
  }
  assert.deepEqual(snapshot(existing), before);
  assert.deepEqual([...Deno.readDirSync(tmp.path)].map((e) => e.name).sort(), ["empty", "existing", "repo", "src"]);
  assert.deepEqual([...Deno.readDirSync(`${tmp.path}/empty`)], []);
  assert.deepEqual([...Deno.readDirSync(`${repo}/tmp`)], []);
});

Deno.test("export refuses bad destinations with one clear line", async () => {
  await using tmp = await tempDir();
  await writeImage(`${tmp.path}/src`, { tag: "v1", layers: [{ tar: sampleTar() }] });
  const repo = `${tmp.path}/repo`;
  assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/src:v1`, "app")).code, 0);
  await Deno.mkdir(`${tmp.path}/notlayout`);
  await Deno.writeTextFile(`${tmp.path}/notlayout/file`, "x");
  await Deno.mkdir(`${tmp.path}/broken`);
  await Deno.writeTextFile(`${tmp.path}/broken/oci-layout`, '{"imageLayoutVersion":"1.0.0"}');
  await Deno.writeTextFile(`${tmp.path}/broken/index.json`, "{not json");
  const cases: [string[], number, RegExp][] = [
    [["app", `docker://example.com/x`], 2, /invalid destination "docker:\/\/example.com\/x"/],
    [["app", `oci:${tmp.path}/o:sha256:${"0".repeat(64)}`], 2, /name a tag, not a digest/],
    [["app", `oci:${tmp.path}/o`, "--compression", "lz4"], 2, /--compression must be gzip, zstd, zstd:chunked or none/],
    [["app", `oci:${tmp.path}/o`, "--level", "10"], 2, /--level for gzip must be an integer from 1 to 9/],
    [["app", `oci:${tmp.path}/notlayout`], 2, /is a non-empty directory that is not an OCI layout/],
    [["app", `oci:${tmp.path}/broken`], 1, /index.json is not valid JSON/],
    [["app", `oci-archive:${tmp.path}/no/such/dir/x.tar`], 1, /the directory it would be written in does not exist/],
    [["app", `oci-archive:${tmp.path}/notlayout`], 2, /is a directory; give a file name/],
    [["nope", `oci:${tmp.path}/o`], 1, /no image tagged "nope"/],
  ];
  for (const [args, code, re] of cases) {
    const r = await deltaship(repo, "export", ...args);
    assert.equal(r.code, code, args.join(" "));
    assert.match(r.stderr, re, args.join(" "));
    assert.equal(r.stderr.split("\n").length, 2, r.stderr);
  }
  assert.equal(await Deno.lstat(`${tmp.path}/o`).catch(() => null), null);
  assert.equal(Deno.readTextFileSync(`${tmp.path}/broken/index.json`), "{not json");
});
