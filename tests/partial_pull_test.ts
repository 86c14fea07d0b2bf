/**
 * Partial pulls of zstd:chunked layers against a real docker-registry with a
 * byte-counting proxy in front: an image whose big layer changed in 1% of its
 * files, pushed by deltaship as zstd:chunked, pulled after its previous
 * version fetches little more than the changed files; `--partial never`
 * fetches whole blobs; a server without Range support, and hostile TOCs,
 * fall back to the whole blob for that layer; an interrupted partial pull
 * leaves nothing visible and the next one succeeds.
 */
import assert from "node:assert/strict";
import { deltashipCommand, runCli, tempDir } from "./helpers/cli.ts";
import { haveTools } from "./helpers/interop.ts";
import { startProxy } from "./helpers/fault_proxy.ts";
import { pushImage, rawManifest, startRegistry } from "./helpers/registry.ts";
import {
  bigLayerEntries,
  blobTraffic,
  getBytes,
  pushTwoVersions,
  sha,
  TEST_IMAGE,
  uploadBlob,
  uploadManifest,
} from "./helpers/partial.ts";
import { noise, unzstd } from "./helpers/chunked.ts";
import { compress, writeImage } from "./helpers/oci.ts";
import { buildTar } from "./helpers/tar.ts";
import { skippableHeader } from "../src/compression/chunked_footer.ts";
import { concat } from "../src/util/streams.ts";

const REGISTRY = haveTools("partial pulls", "docker-registry");

interface PullJson {
  manifest: string;
  bytesFetched: number;
  layers?: { digest: string; way: string; size: number; fetched: number; reason?: string; reusedFiles?: number }[];
}

interface DiscoveryJson {
  way: string;
  reason: string;
  partialBytes: number;
  missingBytes: number;
}

/**
 * Pulls `from` quietly into `repo`, forgets what `watched` (a proxy) saw so
 * far, then pulls `to` with --json; both must succeed. Returns the second
 * pull's JSON. `names` are the local names of the two pulls, if any.
 */
async function pullUpgrade<T = PullJson>(
  repo: string,
  watched: { requests: unknown[] },
  from: string,
  to: string,
  names: [string, string] | [] = [],
): Promise<T> {
  assert.equal((await runCli(["--repo", repo, "-q", "pull", from, ...names.slice(0, 1)])).code, 0);
  watched.requests.length = 0;
  const r = await runCli(["--repo", repo, "--json", "pull", to, ...names.slice(1)]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as T;
}

Deno.test({
  name: "partial pull: a 1% change fetches about the changed files' compressed size, exact manifest, fsck clean",
  ignore: !REGISTRY,
  async fn() {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    const pushed = await pushTwoVersions(tmp.path, `${tmp.path}/publisher`, reg.host);
    await using proxy = startProxy(reg.url);
    const repo = `${tmp.path}/host`;
    const v1 = await runCli(["--repo", repo, "--json", "pull", `docker://${proxy.host}/partial/app:v1`, "app"]);
    assert.equal(v1.code, 0, v1.stderr);
    const first = JSON.parse(v1.stdout) as PullJson;
    assert.equal(first.manifest, pushed.v1);
    assert.ok(first.layers!.every((l) => l.way === "full"), "nothing to reuse: whole blobs");
    proxy.requests.length = 0;

    const v2 = await runCli(["--repo", repo, "--json", "pull", `docker://${proxy.host}/partial/app:v2`, "app"]);
    assert.equal(v2.code, 0, v2.stderr);
    const r = JSON.parse(v2.stdout) as PullJson;
    assert.equal(r.manifest, pushed.v2);
    const big = r.layers!.find((l) => l.way === "partial");
    assert.ok(big, `the big layer went partial: ${JSON.stringify(r.layers)}`);
    assert.equal(big.reusedFiles, TEST_IMAGE.files - TEST_IMAGE.changed.length);
    const traffic = blobTraffic(proxy.requests);
    // The changed files are noise: they compress to about their own size.
    const changedBytes = TEST_IMAGE.changed.length * TEST_IMAGE.size;
    const ratio = traffic.bytes / changedBytes;
    console.log(
      `partial pull: ${traffic.bytes} bytes in ${traffic.requests} blob requests for ${changedBytes} bytes ` +
        `of changed files (ratio ${ratio.toFixed(2)}), blob ${big.size} bytes`,
    );
    assert.ok(ratio < 1.6, `fetched ${traffic.bytes} bytes for ${changedBytes} of changed files`);
    assert.ok(traffic.bytes < big.size / 10);
    assert.ok(Math.abs(r.bytesFetched - traffic.bytes) < 1024, `reported ${r.bytesFetched}, sent ${traffic.bytes}`);
    const fsck = await runCli(["--repo", repo, "fsck"]);
    assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
    // The text output says which way the layer went.
    const again = `${tmp.path}/host2`;
    assert.equal((await runCli(["--repo", again, "-q", "pull", `docker://${proxy.host}/partial/app:v1`])).code, 0);
    const text = await runCli(["--repo", again, "pull", `docker://${proxy.host}/partial/app:v2`]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(
      text.stdout,
      /layer sha256:[0-9a-f]+: partial, 297 of 300 files reused, fetched .* of .* \(98% saved\)/,
    );
  },
});

Deno.test({
  name: "partial pull: --partial never fetches whole blobs",
  ignore: !REGISTRY,
  async fn() {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    const pushed = await pushTwoVersions(tmp.path, `${tmp.path}/publisher`, reg.host);
    await using proxy = startProxy(reg.url);
    const repo = `${tmp.path}/host`;
    assert.equal((await runCli(["--repo", repo, "-q", "pull", `docker://${proxy.host}/partial/app:v1`])).code, 0);
    proxy.requests.length = 0;
    const v2 = await runCli([
      "--repo",
      repo,
      "--json",
      "pull",
      "--partial",
      "never",
      `docker://${proxy.host}/partial/app:v2`,
    ]);
    assert.equal(v2.code, 0, v2.stderr);
    const r = JSON.parse(v2.stdout) as PullJson;
    assert.equal(r.manifest, pushed.v2);
    assert.ok(r.layers!.every((l) => l.way === "full" && l.reason === undefined));
    const traffic = blobTraffic(proxy.requests);
    assert.equal(traffic.ranged, 0, "no Range request");
    const big = Math.max(...r.layers!.map((l) => l.size));
    assert.ok(traffic.bytes >= big, `${traffic.bytes} bytes: the whole blob`);
    const bad = await runCli([
      "--repo",
      repo,
      "pull",
      "--partial",
      "sometimes",
      `docker://${proxy.host}/partial/app:v2`,
    ]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--partial must be auto or never/);
  },
});

Deno.test({
  name: "partial pull: a server that ignores Range (200) makes the layer come whole, with one note",
  ignore: !REGISTRY,
  async fn() {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    const pushed = await pushTwoVersions(tmp.path, `${tmp.path}/publisher`, reg.host);
    await using proxy = startProxy(reg.url, (req, { forward }) => {
      const headers = new Headers(req.headers);
      headers.delete("range");
      return forward({ headers });
    });
    const repo = `${tmp.path}/host`;
    assert.equal((await runCli(["--repo", repo, "-q", "pull", `docker://${proxy.host}/partial/app:v1`])).code, 0);
    const v2 = await runCli(["--repo", repo, "--json", "pull", `docker://${proxy.host}/partial/app:v2`]);
    assert.equal(v2.code, 0, v2.stderr);
    const r = JSON.parse(v2.stdout) as PullJson;
    assert.equal(r.manifest, pushed.v2);
    const big = r.layers!.find((l) => l.reason !== undefined);
    assert.ok(big && big.way === "full", JSON.stringify(r.layers));
    assert.match(big.reason!, /does not serve byte ranges/);
    assert.equal(v2.stderr.match(/does not serve byte ranges/g)?.length, 1, v2.stderr);
    assert.equal((await runCli(["--repo", repo, "fsck"])).code, 0);
  },
});

/** A hostile variant of the big layer: its annotations and, when given, a TOC of its own appended to the blob. */
interface Hostile {
  name: string;
  /** Changes the TOC document (a new TOC frame is appended and pointed at). */
  toc?: (toc: { entries: Record<string, unknown>[] }) => void;
  /** Changes the annotations last. */
  annotations?: (a: Record<string, string>) => void;
  reason: RegExp;
}

const POSITION = "io.github.containers.zstd-chunked.manifest-position";
const CHECKSUM = "io.github.containers.zstd-chunked.manifest-checksum";

const HOSTILE: Hostile[] = [
  {
    name: "wrong checksum",
    annotations: (a) => void (a[CHECKSUM] = `sha256:${"ab".repeat(32)}`),
    reason: /TOC: digest sha256:[0-9a-f]+ is not the sha256:abab/,
  },
  {
    name: "huge",
    annotations: (a) => {
      const [o, l, _u, t] = a[POSITION].split(":");
      a[POSITION] = `${o}:${l}:${200 << 20}:${t}`;
    },
    reason: /over the limit/,
  },
  {
    name: "offsets out of range",
    toc: (toc) => {
      const e = toc.entries.find((e) => e.type === "reg")!;
      e.endOffset = 1e12;
    },
    reason: /past the content's end/,
  },
  {
    name: "overlapping ranges",
    toc: (toc) => {
      const regs = toc.entries.filter((e) => e.type === "reg");
      regs[5].offset = regs[4].offset;
      regs[5].endOffset = regs[4].endOffset;
    },
    reason: /overlap/,
  },
  {
    name: "a file digest that lies (fetched frames)",
    toc: (toc) => {
      const e = toc.entries.find((e) => e.name === "data/f0017.bin")!;
      e.digest = `sha256:${"cd".repeat(32)}`;
      e.chunkDigest = e.digest;
    },
    reason: /content of "data\/f0017.bin" \(TOC\): digest mismatch/,
  },
  {
    name: "a file digest that lies (another file's content reused)",
    toc: (toc) => {
      const e = toc.entries.find((e) => e.name === "data/f0017.bin")!;
      const other = toc.entries.find((e) => e.name === "data/f0018.bin")!;
      e.digest = other.digest;
      e.chunkDigest = other.digest;
    },
    reason: /diff_id\): digest mismatch/,
  },
];

Deno.test({
  name: "partial pull: hostile TOCs (checksum, huge, out of range, overlapping, lying digests) fall back to the blob",
  ignore: !REGISTRY,
  async fn() {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    const pushed = await pushTwoVersions(tmp.path, `${tmp.path}/publisher`, reg.host);
    const accept = "application/vnd.oci.image.manifest.v1+json";
    const manifest = JSON.parse(
      new TextDecoder().decode(await getBytes(`${reg.url}/v2/partial/app/manifests/v2`, accept)),
    );
    assert.equal(sha(await getBytes(`${reg.url}/v2/partial/app/manifests/v2`, accept)), pushed.v2);
    const sizes = manifest.layers.map((l: { size: number }) => l.size);
    const index = sizes.indexOf(Math.max(...sizes)); // the big layer
    const layer = manifest.layers[index];
    const blob = await getBytes(`${reg.url}/v2/partial/app/blobs/${layer.digest}`);
    const [offset, length] = layer.annotations[POSITION].split(":").map(Number);
    for (const h of HOSTILE) {
      const annotations = { ...layer.annotations };
      let bytes = blob;
      if (h.toc) {
        const toc = JSON.parse(new TextDecoder().decode(unzstd(blob.subarray(offset, offset + length))));
        h.toc(toc);
        const text = new TextEncoder().encode(JSON.stringify(toc));
        const compressed = compress(text, "zstd");
        bytes = concat([blob, skippableHeader(compressed.length), compressed]);
        annotations[POSITION] = `${blob.length + 8}:${compressed.length}:${text.length}:1`;
        annotations[CHECKSUM] = sha(compressed);
      }
      h.annotations?.(annotations);
      const digest = await uploadBlob(reg.url, "partial/app", bytes);
      const m = structuredClone(manifest);
      m.layers[index] = { ...layer, digest, size: bytes.length, annotations };
      const tag = `hostile-${HOSTILE.indexOf(h)}`;
      const expected = await uploadManifest(reg.url, "partial/app", tag, new TextEncoder().encode(JSON.stringify(m)));
      const repo = `${tmp.path}/host-${tag}`;
      assert.equal((await runCli(["--repo", repo, "-q", "pull", `docker://${reg.host}/partial/app:v1`])).code, 0);
      const r = await runCli(["--repo", repo, "--json", "pull", `docker://${reg.host}/partial/app:${tag}`]);
      assert.equal(r.code, 0, `${h.name}: ${r.stderr}`);
      const out = JSON.parse(r.stdout) as PullJson;
      assert.equal(out.manifest, expected, h.name);
      const way = out.layers!.find((l) => l.digest === digest)!;
      assert.equal(way.way, "full", h.name);
      assert.match(way.reason!, h.reason, h.name);
      assert.equal(r.stderr.trim().split("\n").filter((l) => l.includes(digest)).length, 1, `${h.name}: ${r.stderr}`);
      const fsck = await runCli(["--repo", repo, "fsck"]);
      assert.equal(fsck.code, 0, `${h.name}: ${fsck.stdout}`);
    }
  },
});

Deno.test({
  name: "partial pull: killed while fetching frames, it leaves nothing visible and the next pull succeeds",
  ignore: !REGISTRY,
  async fn() {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    const pushed = await pushTwoVersions(tmp.path, `${tmp.path}/publisher`, reg.host);
    let ranged = 0;
    let armed = false;
    let frames: () => void = () => {};
    const framesAsked = new Promise<void>((resolve) => frames = resolve);
    await using proxy = startProxy(reg.url, async (req, { forward, signal }) => {
      if (armed && req.headers.has("range") && ++ranged >= 2) {
        frames(); // the frames' request (the first ranged one is the metadata): hold it
        await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
      }
      return forward();
    });
    const repo = `${tmp.path}/host`;
    assert.equal((await runCli(["--repo", repo, "-q", "pull", `docker://${proxy.host}/partial/app:v1`, "v1"])).code, 0);
    armed = true;
    const child = deltashipCommand(["--repo", repo, "pull", `docker://${proxy.host}/partial/app:v2`, "v2"]).spawn();
    await framesAsked;
    child.kill("SIGKILL");
    await child.output();
    const images = await runCli(["--repo", repo, "--json", "images"]);
    assert.equal(images.code, 0);
    assert.ok(!images.stdout.includes(pushed.v2), "the image is not visible");
    assert.equal((await runCli(["--repo", repo, "fsck"])).code, 0);
    const again = await runCli(["--repo", repo, "--json", "pull", `docker://${reg.host}/partial/app:v2`, "v2"]);
    assert.equal(again.code, 0, again.stderr);
    const r = JSON.parse(again.stdout) as PullJson;
    assert.equal(r.manifest, pushed.v2);
    assert.ok(r.layers!.some((l) => l.way === "partial"));
    assert.equal((await runCli(["--repo", repo, "fsck"])).code, 0);
    // The dead process's temporary files go at the next gc.
    assert.equal((await runCli(["--repo", repo, "gc"])).code, 0);
    const left = [...Deno.readDirSync(`${repo}/tmp`)];
    assert.deepEqual(left, [], "the temporary area is empty after gc");
  },
});

Deno.test({
  name: "partial pull: the plan weighs partial layers against a published delta and takes the fewer bytes",
  ignore: !REGISTRY,
  async fn() {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    const publisher = `${tmp.path}/publisher`;
    const pushed = await pushTwoVersions(tmp.path, publisher, reg.host);
    const ref = (tag: string) => `docker://${reg.host}/partial/app:${tag}`;
    const delta = await runCli([
      "--repo",
      publisher,
      "--json",
      "create-delta",
      ref("v1"),
      ref("v2"),
      `docker://${reg.host}/partial/app`,
    ]);
    assert.equal(delta.code, 0, delta.stderr);
    await using proxy = startProxy(reg.url);
    const repo = `${tmp.path}/host`;
    const out = await pullUpgrade<PullJson & { discovery: DiscoveryJson; layers: { way: string }[] }>(
      repo,
      proxy,
      `docker://${proxy.host}/partial/app:v1`,
      `docker://${proxy.host}/partial/app:v2`,
    );
    assert.equal(out.manifest, pushed.v2);
    const d = out.discovery;
    assert.ok(d.partialBytes > 0, `partial layers were weighed: ${JSON.stringify(d)}`);
    const blobs = blobTraffic(proxy.requests);
    console.log(
      `delta vs partial: ${d.way}; partial would fetch ${d.partialBytes}, the full image ${d.missingBytes}, ` +
        `fetched ${out.bytesFetched} (blob bytes through the proxy ${blobs.bytes})`,
    );
    if (d.way === "delta") {
      // Its bytes and the TOCs fetched to weigh it are reported, as the proxy saw them.
      assert.ok(Math.abs(out.bytesFetched - blobs.bytes) < 4096, `${out.bytesFetched} reported, ${blobs.bytes} sent`);
    } else {
      assert.ok(out.layers.some((l: { way: string }) => l.way === "partial"));
      assert.match(d.reason, /partial layers fetch \d+ bytes, the smallest delta \d+/);
    }
    assert.ok(blobs.bytes < d.missingBytes / 10, "either way, far less than the full image");
    assert.equal((await runCli(["--repo", repo, "fsck"])).code, 0);
  },
});

/**
 * Pushes two versions of an image as zstd:chunked: a 4 MiB file of noise that
 * v2 changes in 100 bytes in the middle, and a small file. Returns the
 * publisher's repository and the two manifest digests.
 */
async function pushBigVersions(dir: string, host: string): Promise<{ publisher: string; pushed: string[] }> {
  const publisher = `${dir}/publisher`;
  const big = noise(4 << 20, 42);
  const changed = big.slice();
  changed.set(noise(100, 43), 2 << 20); // 100 bytes in the middle
  const pushed: string[] = [];
  for (const [v, content] of [[1, big], [2, changed]] as const) {
    await writeImage(`${dir}/src${v}`, {
      tag: `v${v}`,
      layers: [{ tar: buildTar([{ path: "app.bin", content }, { path: "other.txt", content: `v${v}\n` }]) }],
    });
    assert.equal((await runCli(["--repo", publisher, "-q", "pull", `oci:${dir}/src${v}:v${v}`, `v${v}`])).code, 0);
    const push = await runCli([
      "--repo",
      publisher,
      "--json",
      "push",
      `v${v}`,
      `docker://${host}/partial/big:v${v}`,
      "--compression",
      "zstd:chunked",
    ]);
    assert.equal(push.code, 0, push.stderr);
    pushed.push(JSON.parse(push.stdout).manifest);
  }
  return { publisher, pushed };
}

Deno.test({
  name: "partial pull: a big file changed in a few bytes fetches only the chunks around the change",
  ignore: !REGISTRY,
  async fn() {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    const { pushed } = await pushBigVersions(tmp.path, reg.host);
    await using proxy = startProxy(reg.url);
    const repo = `${tmp.path}/host`;
    const out = await pullUpgrade<PullJson & { layers: { reusedChunks?: number }[] }>(
      repo,
      proxy,
      `docker://${proxy.host}/partial/big:v1`,
      `docker://${proxy.host}/partial/big:v2`,
    );
    assert.equal(out.manifest, pushed[1]);
    const layer = out.layers[0];
    assert.equal(layer.way, "partial", JSON.stringify(out.layers));
    assert.ok((layer.reusedChunks ?? 0) > 30, `chunks reused: ${layer.reusedChunks}`);
    const traffic = blobTraffic(proxy.requests);
    console.log(
      `chunk reuse: ${traffic.bytes} bytes fetched of a ${layer.size}-byte blob, ${layer.reusedChunks} chunks reused`,
    );
    assert.ok(traffic.bytes < layer.size / 8, `${traffic.bytes} bytes of ${layer.size}`);
    assert.equal((await runCli(["--repo", repo, "fsck"])).code, 0);
  },
});

Deno.test({
  name: "partial pull: partial layers are taken when they fetch fewer bytes than the smallest published delta",
  ignore: !REGISTRY,
  async fn() {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    const { publisher, pushed } = await pushBigVersions(tmp.path, reg.host);
    // A delta that carries the 4 MiB file whole (not bsdiffed: files of 1 MiB and more go as they are), so that it
    // costs about the file, where the partial layer fetches only the chunks around the change.
    const ref = (tag: string) => `docker://${reg.host}/partial/big:${tag}`;
    const args = ["create-delta", "--max-bsdiff-size", "1", ref("v1"), ref("v2"), `docker://${reg.host}/partial/big`];
    const delta = await runCli(["--repo", publisher, "--json", ...args]);
    assert.equal(delta.code, 0, delta.stderr);
    await using proxy = startProxy(reg.url);
    const repo = `${tmp.path}/host`;
    const out = await pullUpgrade<PullJson & { discovery: DiscoveryJson }>(
      repo,
      proxy,
      `docker://${proxy.host}/partial/big:v1`,
      `docker://${proxy.host}/partial/big:v2`,
    );
    assert.equal(out.manifest, pushed[1]);
    assert.equal(out.discovery.way, "full", JSON.stringify(out.discovery));
    const m = /^partial layers fetch (\d+) bytes, the smallest delta (\d+)$/.exec(out.discovery.reason);
    assert.ok(m, out.discovery.reason);
    assert.ok(Number(m[1]) < Number(m[2]) / 8, out.discovery.reason);
    assert.equal(out.discovery.partialBytes, Number(m[1]));
    assert.deepEqual(out.layers?.map((l) => l.way), ["partial"]);
    // No delta blob was fetched: what went through the proxy is the partial layer's metadata and frames.
    const traffic = blobTraffic(proxy.requests);
    assert.ok(traffic.bytes < (1 << 20) / 2, `${traffic.bytes} blob bytes fetched`);
    assert.equal((await runCli(["--repo", repo, "fsck"])).code, 0);
  },
});

Deno.test({
  name: "partial pull: a server that answers one range a request still serves a partial pull, one range at a time",
  ignore: !REGISTRY,
  async fn() {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    const pushed = await pushTwoVersions(tmp.path, `${tmp.path}/publisher`, reg.host);
    await using proxy = startProxy(reg.url, (req, { forward }) => {
      const range = req.headers.get("range");
      if (!range?.includes(",")) return forward();
      const headers = new Headers(req.headers);
      headers.set("range", range.slice(0, range.indexOf(","))); // only the first range is answered
      return forward({ headers });
    });
    const repo = `${tmp.path}/host`;
    const out = await pullUpgrade(
      repo,
      proxy,
      `docker://${proxy.host}/partial/app:v1`,
      `docker://${proxy.host}/partial/app:v2`,
    );
    assert.equal(out.manifest, pushed.v2);
    assert.ok(out.layers!.some((l) => l.way === "partial"), JSON.stringify(out.layers));
    const ranged = proxy.requests.filter((q) => q.range !== null).map((q) => q.range!);
    // The metadata (one merged range), the frames asked together (answered with the first), then the others alone.
    assert.equal(ranged.length, 1 + 1 + (TEST_IMAGE.changed.length - 1), ranged.join("\n"));
    assert.ok(ranged.slice(2).every((h) => !h.includes(",")));
    assert.equal((await runCli(["--repo", repo, "fsck"])).code, 0);
  },
});

Deno.test({
  name: "partial pull: ranged blob GETs redirected to another host are asked there with their ranges",
  ignore: !REGISTRY,
  async fn() {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    const pushed = await pushTwoVersions(tmp.path, `${tmp.path}/publisher`, reg.host);
    await using store = startProxy(reg.url); // another origin, serving the same blobs
    await using front = startProxy(reg.url, (req, { path, forward }) => {
      if (req.method !== "GET" || !path.includes("/blobs/")) return forward();
      return Promise.resolve(new Response(null, { status: 307, headers: { location: `${store.url}${path}?sig=x` } }));
    });
    const repo = `${tmp.path}/host`;
    const out = await pullUpgrade(
      repo,
      store,
      `docker://${front.host}/partial/app:v1`,
      `docker://${front.host}/partial/app:v2`,
    );
    assert.equal(out.manifest, pushed.v2);
    assert.ok(out.layers!.some((l) => l.way === "partial"), JSON.stringify(out.layers));
    const ranged = store.requests.filter((q) => q.range !== null);
    assert.ok(ranged.length >= 2, "the metadata and the frames were asked at the other host, by Range");
    assert.ok(store.requests.every((q) => !q.authorization));
    assert.ok(blobTraffic(store.requests).bytes < 300_000);
  },
});

Deno.test({
  name: "partial pull: a layer without tar-split (as older writers made them) is rebuilt from its frames in order",
  ignore: !REGISTRY,
  async fn() {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    await pushTwoVersions(tmp.path, `${tmp.path}/publisher`, reg.host);
    // The v2 manifest with its big layer's tar-split position dropped: the blob is the same.
    const accept = "application/vnd.oci.image.manifest.v1+json";
    const manifest = JSON.parse(
      new TextDecoder().decode(await getBytes(`${reg.url}/v2/partial/app/manifests/v2`, accept)),
    );
    const sizes = manifest.layers.map((l: { size: number }) => l.size);
    const layer = manifest.layers[sizes.indexOf(Math.max(...sizes))];
    delete layer.annotations["io.github.containers.zstd-chunked.tarsplit-position"];
    const expected = await uploadManifest(
      reg.url,
      "partial/app",
      "old-writer",
      new TextEncoder().encode(JSON.stringify(manifest)),
    );
    await using proxy = startProxy(reg.url);
    const repo = `${tmp.path}/host`;
    const out = await pullUpgrade(
      repo,
      proxy,
      `docker://${proxy.host}/partial/app:v1`,
      `docker://${proxy.host}/partial/app:old-writer`,
    );
    assert.equal(out.manifest, expected);
    const way = out.layers!.find((l) => l.digest === layer.digest)!;
    assert.equal(way.way, "partial", JSON.stringify(out.layers));
    const traffic = blobTraffic(proxy.requests);
    const changedBytes = TEST_IMAGE.changed.length * TEST_IMAGE.size;
    console.log(`without tar-split: ${traffic.bytes} bytes in ${traffic.requests} requests, ${changedBytes} changed`);
    assert.ok(traffic.bytes < way.size / 10, `${traffic.bytes} of ${way.size}`);
    assert.equal((await runCli(["--repo", repo, "fsck"])).code, 0);
  },
});

Deno.test({
  name: "partial pull: layers skopeo 1.9 wrote (legacy names, no tar-split, zero blocks missing) pull partially",
  ignore: !haveTools("partial pulls of skopeo 1.9 layers", "docker-registry", "skopeo"),
  async fn() {
    await using tmp = await tempDir();
    await using reg = await startRegistry();
    const { files, size, changed } = TEST_IMAGE;
    const diffIds: string[][] = [];
    for (const v of [1, 2] as const) {
      const tar = buildTar(bigLayerEntries(files, size, v, changed));
      const padded = new Uint8Array(Math.ceil(tar.length / 10240) * 10240); // as GNU tar pads
      padded.set(tar);
      const image = await writeImage(`${tmp.path}/src${v}`, { tag: `v${v}`, layers: [{ tar: padded }] });
      diffIds.push(image.diffIds);
      await pushImage(`oci:${tmp.path}/src${v}:v${v}`, `docker://${reg.host}/legacy/app:v${v}`, {
        compressFormat: "zstd:chunked",
      });
    }
    await using proxy = startProxy(reg.url);
    const repo = `${tmp.path}/host`;
    const out = await pullUpgrade(
      repo,
      proxy,
      `docker://${proxy.host}/legacy/app:v1`,
      `docker://${proxy.host}/legacy/app:v2`,
      ["v1", "v2"],
    );
    assert.equal(out.manifest, sha(await rawManifest(`${reg.host}/legacy/app:v2`)));
    assert.equal(out.layers![0].way, "partial", JSON.stringify(out.layers));
    const traffic = blobTraffic(proxy.requests);
    console.log(`skopeo 1.9 layer: ${traffic.bytes} bytes fetched of a ${out.layers![0].size}-byte blob`);
    assert.ok(traffic.bytes < out.layers![0].size / 10);
    const layer = await runCli(["--repo", repo, "layer", diffIds[1][0]]);
    assert.equal(layer.code, 0, layer.stderr);
    assert.equal(sha(layer.stdoutBytes), diffIds[1][0], "the rebuilt layer, zero blocks and all");
    assert.equal((await runCli(["--repo", repo, "fsck"])).code, 0);
  },
});
