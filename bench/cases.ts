/**
 * The benchmark cases: what deltaship runs, the floor (standard tools over the
 * same bytes) and the peer (another tool doing the same job) measured beside it,
 * and the targets the issues set. The harness they are built with is
 * `harness.ts`; `main.ts` runs them.
 *
 * @module
 */

import { pushImage, type Registry, startRegistry } from "../tests/helpers/registry.ts";
import { type FaultProxy, startProxy } from "../tests/helpers/fault_proxy.ts";
import {
  type BenchCase,
  type BenchEnv,
  ds,
  dsPull,
  type Expected,
  expectManifest,
  fileBytes,
  fresh,
  layoutLayers,
  manifestOf,
  newLayerTars,
  sh,
  withCorpusImage,
} from "./harness.ts";
import { measure } from "./measure.ts";
import { type Synthetic, synthetic } from "./synthetic.ts";

/** A corpus: its old/new layouts, the reference delta between them and what applying it gives. */
interface Corpus {
  /** Prefix of case names ("" for the real-world corpus, "far-"). */
  prefix: string;
  label: string;
  far: boolean;
  layouts(env: BenchEnv): string;
  delta(env: BenchEnv): string;
  expected(env: BenchEnv): string;
  /** Repository name for the registry cases. */
  registryName: string;
  /** The reference tools' figures from the corpus README (seconds, MiB): tar-patch of both layers, tar-diff of both. */
  tarPatch: { seconds: number; mib: number };
  tarDiff: { seconds: number; mib: number };
}

const REALWORLD: Corpus = {
  prefix: "",
  label: "real-world",
  far: false,
  layouts: (env) => env.corpus,
  delta: (env) => `${env.shared}/realworld-delta`,
  expected: (env) => `${env.shared}/realworld-expected.json`,
  registryName: "corpus",
  // ../shared/bench/README.md: tar-patch 0.23 s (22 MB) + 1.13 s (45 MB); tar-diff 10.1 s (203 MB) + 87 s (1.78 GB).
  tarPatch: { seconds: 0.23 + 1.13, mib: 45e6 / 2 ** 20 },
  tarDiff: { seconds: 10.1 + 87, mib: 1.78e9 / 2 ** 20 },
};

const FAR: Corpus = {
  prefix: "far-",
  label: "far",
  far: true,
  layouts: (env) => env.far,
  delta: (env) => `${env.shared}/far/far-delta`,
  expected: (env) => `${env.shared}/far/far-expected.json`,
  registryName: "far",
  // ../shared/bench/far/README.md: tar-patch of both layers one after the other 2.06 s, 33.6 MB; tar-diff
  // 1.91 s (71 MB) + 104.4 s (1.58 GB).
  tarPatch: { seconds: 2.06, mib: 33.6e6 / 2 ** 20 },
  tarDiff: { seconds: 1.91 + 104.4, mib: 1.58e9 / 2 ** 20 },
};

/** Issue 21: data read system calls per MB rebuilt, at most (a regression to one read per op is thousands). */
const READS_PER_MB = 20;

/** Issue 15's ceiling for a pull or delta pull, default jobs (MiB of peak RSS). */
const MINIMAL_HOST_MIB = 128;
/** Issue 15's `--memory-limit` case: 64 MiB for deltaship's own buffers plus the runtime's ~47 MiB. */
const LIMITED_MIB = 64 + 47;

/**
 * Pull of a corpus image from `oci:` or `oci-archive:` into an empty repository
 * (with `--memory-limit LIMIT` when `limit` is given).
 */
function pullCase(name: string, image: "old" | "new", transport: "oci" | "oci-archive", limit?: string): BenchCase {
  let layers: { path: string; size: number }[] = [];
  const source = (env: BenchEnv) =>
    transport === "oci" ? `oci:${env.corpus}/${image}:${image}` : `oci-archive:${env.cache}/${image}.tar:${image}`;
  return {
    name,
    description: `pull the corpus ${image} image from ${transport}: into an empty repository` +
      (limit ? ` with --memory-limit ${limit}` : ""),
    corpus: true,
    async prepare(env) {
      layers = await layoutLayers(`${env.corpus}/${image}`, image);
      if (transport === "oci-archive") {
        const tar = `${env.cache}/${image}.tar`;
        if (!(await Deno.stat(tar).catch(() => null))) {
          const out = await new Deno.Command("tar", { args: ["-cf", tar, "-C", `${env.corpus}/${image}`, "."] })
            .output();
          if (!out.success) throw new Error("tar -cf failed");
        }
      }
    },
    setup: (_env, scratch) => fresh(scratch),
    run: (env, scratch) => [
      dsPull(env, `${scratch}/repo`, ...(limit ? ["--memory-limit", limit] : []), source(env), image),
    ],
    verify: (env, scratch) => expectManifest(env, `${scratch}/repo`, image, `${env.corpus}/${image}`, image),
    bytes: () => Promise.resolve({ count: layers.reduce((a, l) => a + l.size, 0), label: "compressed" }),
    floor: {
      label: "gzip -dc of the layer blobs",
      tools: ["gzip"],
      commands: () => layers.map((l) => ["gzip", "-dc", l.path]),
    },
    peer: {
      label: "umoci raw unpack",
      tools: ["umoci"],
      setup: (_env, scratch) => Deno.remove(`${scratch}/umoci`, { recursive: true }).catch(() => {}),
      commands: (env, scratch) => [[
        "umoci",
        "raw",
        "unpack",
        "--rootless",
        "--image",
        `${env.corpus}/${image}:${image}`,
        `${scratch}/umoci`,
      ]],
    },
    targets: { rssMiB: limit ? LIMITED_MIB : MINIMAL_HOST_MIB },
  };
}

/**
 * Pull of a corpus's reference delta after the old image, from `oci:`,
 * `oci-archive:` or a registry. The floor decompresses the tar-diff blobs with
 * zstd and hashes the rebuilt layers with sha256sum: the least work any client
 * must do. The reference tar-patch's time from the corpus README stands beside
 * it, and one more run counts the read system calls.
 */
function deltaCase(
  name: string,
  transport: "oci" | "oci-archive" | "docker",
  limit?: string,
  corpus: Corpus = REALWORLD,
): BenchCase {
  let blobs: { path: string; size: number; mediaType: string }[] = [];
  let rebuilt: string[] = [];
  let expected: Expected;
  let registry: Registry | undefined;
  const tag = `${corpus.registryName}:old-to-new`;
  const delta = (env: BenchEnv) =>
    transport === "oci"
      ? `oci:${corpus.delta(env)}`
      : transport === "oci-archive"
      ? `oci-archive:${env.cache}/${corpus.prefix}delta.tar`
      : `docker://${registry!.host}/${tag}`;
  // Issue 4's wall time is for the real-world delta read in place; from a registry, blobs come one at a time.
  // Issue 15: 128 MiB peak, and within 1.10x (oci:) or 1.25x (docker://) of the floor on the real-world corpus;
  // issue 21, on the far one: 1.5x and 1.6x, and on both fewer than 20 data read calls per MB rebuilt. A limited
  // run only has to keep to its limit.
  const floorRatio = transport === "oci"
    ? (corpus.far ? 1.5 : 1.10)
    : transport === "docker"
    ? (corpus.far ? 1.6 : 1.25)
    : 3;
  return {
    name,
    description: `pull the ${corpus.label} delta from ${transport}: after the old image` +
      (limit ? ` with --memory-limit ${limit}` : ""),
    corpus: !corpus.far,
    far: corpus.far,
    tools: transport === "docker" ? ["zstd", "docker-registry", "skopeo"] : ["zstd"],
    finish: async () => await registry?.stop(),
    async prepare(env) {
      if (transport === "docker") {
        registry = await startRegistry();
        await pushImage(`oci:${corpus.delta(env)}`, `docker://${registry.host}/${tag}`);
      }
      expected = JSON.parse(await Deno.readTextFile(corpus.expected(env)));
      blobs = (await layoutLayers(corpus.delta(env))).filter((l) => l.mediaType === "application/vnd.tar-diff");
      if (transport === "oci-archive") {
        await sh(["tar", "-cf", `${env.cache}/${corpus.prefix}delta.tar`, "-C", corpus.delta(env), "."]);
      }
      rebuilt = (await newLayerTars(env, corpus.layouts(env))).slice(1); // the first layer is reused
    },
    setup: withCorpusImage("old", corpus.layouts),
    run: (env, scratch) => [
      dsPull(env, `${scratch}/repo`, ...(limit ? ["--memory-limit", limit] : []), delta(env), "new"),
    ],
    async verify(env, scratch) {
      const got = await manifestOf(env, `${scratch}/repo`, "new");
      if (got !== expected.new_manifest) throw new Error(`delta pull gave ${got}, expected ${expected.new_manifest}`);
    },
    bytes: fileBytes(() => rebuilt, "rebuilt"),
    floor: {
      label: "zstd -dc of the tar-diffs + sha256sum of the rebuilt layers",
      tools: ["zstd", "sha256sum"],
      commands: () => [
        ...blobs.map((b) => ["sh", "-c", `tail -c +9 ${b.path} | zstd -dc`]),
        ["sha256sum", ...rebuilt],
      ],
    },
    reference: limit ? undefined : {
      label: "Go tar-patch of both layers, source on disk",
      seconds: corpus.tarPatch.seconds,
      mib: corpus.tarPatch.mib,
    },
    countReads: true,
    // Under --memory-limit the output batch does not grow (memory before read calls): reads are shown, not bounded.
    targets: limit ? { rssMiB: LIMITED_MIB } : {
      ...(transport === "docker" || corpus.far ? {} : { wallSeconds: 0.7 }),
      rssMiB: MINIMAL_HOST_MIB,
      floorRatio,
      readsPerMB: READS_PER_MB,
    },
  };
}

/** Pull of a corpus's new image from a real registry on 127.0.0.1 (issue 3's case). */
function registryPullCase(corpus: Corpus = REALWORLD): BenchCase {
  let registry: Registry | undefined;
  let layers: { path: string; size: number }[] = [];
  const ref = () => `${registry!.host}/${corpus.registryName}:new`;
  return {
    name: `${corpus.prefix}pull-new-registry`,
    description: `pull the ${corpus.label} corpus new image from a local registry (docker://) into an empty repository`,
    corpus: !corpus.far,
    far: corpus.far,
    tools: ["docker-registry", "skopeo"],
    async prepare(env) {
      layers = await layoutLayers(`${corpus.layouts(env)}/new`, "new");
      registry = await startRegistry();
      await pushImage(`oci:${corpus.layouts(env)}/new:new`, `docker://${ref()}`);
    },
    finish: async () => await registry?.stop(),
    setup: (_env, scratch) => fresh(scratch),
    run: (env, scratch) => [dsPull(env, `${scratch}/repo`, `docker://${ref()}`, "new")],
    verify: (env, scratch) => expectManifest(env, `${scratch}/repo`, "new", `${corpus.layouts(env)}/new`, "new"),
    bytes: () => Promise.resolve({ count: layers.reduce((a, l) => a + l.size, 0), label: "compressed" }),
    floor: {
      label: "gzip -dc of the layer blobs",
      tools: ["gzip"],
      commands: () => layers.map((l) => ["gzip", "-dc", l.path]),
    },
    peer: {
      label: "skopeo copy + umoci raw unpack",
      tools: ["skopeo", "umoci"],
      setup: async (_env, scratch) => {
        await Deno.remove(`${scratch}/peer`, { recursive: true }).catch(() => {});
        await Deno.remove(`${scratch}/unpacked`, { recursive: true }).catch(() => {});
      },
      commands: (_env, scratch) => [
        [
          "skopeo",
          "copy",
          "-q",
          "--insecure-policy",
          "--src-tls-verify=false",
          `docker://${ref()}`,
          `oci:${scratch}/peer:new`,
        ],
        ["umoci", "raw", "unpack", "--rootless", "--image", `${scratch}/peer:new`, `${scratch}/unpacked`],
      ],
    },
    // Issue 21: within 1.2x of the floor (1.43x before it).
    targets: { peerRatio: 1, rssMiB: MINIMAL_HOST_MIB, floorRatio: 1.2 },
  };
}

/**
 * Pull of the corpus new image, pushed by deltaship as zstd:chunked to a real
 * registry, after the old image (issue 24): `partial` lets zstd:chunked layers
 * come partially, `full` pulls whole blobs (`--partial never`). A
 * byte-counting proxy in front of the registry counts what each pull fetched
 * (`fetched bytes`); the delta's bytes are delta-registry's.
 */
function partialCase(way: "partial" | "full"): BenchCase {
  let registry: Registry | undefined;
  let proxy: FaultProxy | undefined;
  let pushed = "";
  const ref = () => `${proxy!.host}/corpus:new-chunked`;
  return {
    name: way === "partial" ? "partial-registry" : "partial-registry-never",
    description: `pull the corpus new image pushed as zstd:chunked from a local registry, after the old image` +
      (way === "full" ? ", with --partial never" : ""),
    corpus: true,
    tools: ["docker-registry"],
    async prepare(env) {
      registry = await startRegistry();
      proxy = startProxy(registry.url);
      const publisher = `${env.cache}/work/partial-publisher`;
      await fresh(publisher);
      await sh(dsPull(env, `${publisher}/repo`, `oci:${env.corpus}/new:new`, "new"));
      const out = await new Deno.Command(env.deltaship[0], {
        args: [
          ...env.deltaship.slice(1),
          "--repo",
          `${publisher}/repo`,
          "--json",
          "push",
          "new",
          `docker://${registry.host}/corpus:new-chunked`,
          "--compression",
          "zstd:chunked",
        ],
        stdout: "piped",
      }).output();
      if (!out.success) throw new Error("push --compression zstd:chunked failed");
      pushed = JSON.parse(new TextDecoder().decode(out.stdout)).manifest;
    },
    finish: async () => {
      await proxy?.close();
      await registry?.stop();
    },
    async setup(env, scratch) {
      await withCorpusImage("old")(env, scratch);
      proxy!.requests.length = 0;
    },
    run: (env, scratch) => [
      dsPull(env, `${scratch}/repo`, ...(way === "full" ? ["--partial", "never"] : []), `docker://${ref()}`, "new"),
    ],
    async verify(env, scratch) {
      const got = await manifestOf(env, `${scratch}/repo`, "new");
      if (got !== pushed) throw new Error(`partial pull gave ${got}, expected ${pushed}`);
    },
    extra: () => {
      const blobs = proxy!.requests.filter((r) => r.method === "GET" && r.path.includes("/blobs/"));
      return Promise.resolve({
        "fetched bytes": blobs.reduce((n, r) => n + r.bytesOut, 0),
        "blob requests": blobs.length,
      });
    },
    targets: { rssMiB: MINIMAL_HOST_MIB },
  };
}

/** apply-delta of the real-world delta to an oci-archive (gzip), after the old image. */
function applyDeltaCase(): BenchCase {
  let expected: Expected;
  let tardiffs: string[] = [];
  let layers: string[] = [];
  return {
    name: "apply-delta-archive",
    description: "apply the real-world delta and write the new image to an oci-archive (gzip)",
    corpus: true,
    async prepare(env) {
      expected = JSON.parse(await Deno.readTextFile(`${env.shared}/realworld-expected.json`));
      tardiffs = (await layoutLayers(`${env.shared}/realworld-delta`))
        .filter((l) => l.mediaType === "application/vnd.tar-diff").map((l) => l.path);
      layers = await newLayerTars(env);
    },
    setup: withCorpusImage("old"),
    run: (env, scratch) => [
      ds(
        env,
        "--repo",
        `${scratch}/repo`,
        "-q",
        "apply-delta",
        "--name",
        "new",
        `oci:${env.shared}/realworld-delta`,
        `oci-archive:${scratch}/new.tar`,
      ),
    ],
    async verify(env, scratch) {
      const got = await manifestOf(env, `${scratch}/repo`, "new");
      if (got !== expected.new_manifest) throw new Error(`apply-delta kept ${got}, expected ${expected.new_manifest}`);
      await Deno.stat(`${scratch}/new.tar`);
    },
    bytes: fileBytes(() => layers, "written"),
    floor: {
      label: "zstd -dc of the tar-diffs + gzip -6 of every layer",
      tools: ["zstd", "gzip"],
      commands: () => [
        ...tardiffs.map((t) => ["sh", "-c", `tail -c +9 ${t} | zstd -dc`]),
        ...layers.map((l) => ["gzip", "-6", "-c", l]),
      ],
    },
  };
}

/**
 * create-delta from a corpus's old image to its new one, both read from their
 * OCI layouts into an empty repository (the whole job a CI run does), with
 * `--binary-diff MODE`, beside the reference tar-diff sizes (bsdiff); the delta
 * is then applied to check it, and (once) timed being applied: the bsdiff,
 * zstd and auto cases together are the comparison issue 13 asks for. The floor
 * is `zstd --patch-from` of each changed layer tar against the old one (the
 * least work a binary diff of those bytes takes); the reference tar-diff's time
 * from the corpus README stands beside it.
 */
function createDeltaCase(mode: "bsdiff" | "zstd" | "auto", corpus: Corpus = REALWORLD): BenchCase {
  let expected: Expected;
  const reference: Record<string, number> = {};
  let pairs: [string, string][] = [];
  const name = mode === "bsdiff" ? "create-delta" : `create-delta-${mode}`;
  return {
    name: `${corpus.prefix}${name}`,
    description: `create the ${corpus.label} delta (old → new) with --jobs 2 --binary-diff ${mode}`,
    corpus: !corpus.far,
    far: corpus.far,
    async prepare(env) {
      expected = JSON.parse(await Deno.readTextFile(corpus.expected(env)));
      for (const l of await layoutLayers(corpus.delta(env))) {
        if (l.mediaType === "application/vnd.tar-diff") reference[l.digest] = l.size;
      }
      const olds = await newLayerTars(env, corpus.layouts(env), "old");
      const news = await newLayerTars(env, corpus.layouts(env), "new");
      pairs = news.map((n, i) => [olds[i], n] as [string, string]).filter(([o, n]) => o !== n);
    },
    async setup(env, scratch) {
      await withCorpusImage("old", corpus.layouts)(env, scratch);
      await sh(dsPull(env, `${scratch}/repo`, `oci:${corpus.layouts(env)}/new:new`));
    },
    run: (env, scratch) => [
      ds(
        env,
        "--repo",
        `${scratch}/repo`,
        "-q",
        "-j",
        "2",
        "create-delta",
        "--binary-diff",
        mode,
        "repo:old",
        "repo:new",
        `oci:${scratch}/delta`,
      ),
    ],
    async verify(env, scratch) {
      const check = `${scratch}/check`;
      await fresh(check);
      await sh(dsPull(env, `${check}/repo`, `oci:${corpus.layouts(env)}/old:old`));
      await sh(dsPull(env, `${check}/repo`, `oci:${scratch}/delta`, "new"));
      const got = await manifestOf(env, `${check}/repo`, "new");
      if (got !== expected.new_manifest) throw new Error(`the created delta applies to ${got}`);
    },
    async extra(env, scratch) {
      const layers = await layoutLayers(`${scratch}/delta`);
      const mine = layers.filter((l) => l.mediaType === "application/vnd.tar-diff");
      const sizes = mine.map((l) => l.size).sort((a, b) => a - b);
      const ref = Object.values(reference).sort((a, b) => a - b);
      // Applying it: a fresh repository holding the old image pulls the delta.
      const check = `${scratch}/apply`;
      await fresh(check);
      await sh(dsPull(env, `${check}/repo`, `oci:${corpus.layouts(env)}/old:old`));
      const apply = await measure(dsPull(env, `${check}/repo`, `oci:${scratch}/delta`, "new"));
      return {
        "delta bytes": layers.reduce((a, l) => a + l.size, 0),
        "apply s": Number(apply.wall.toFixed(2)),
        "apply MiB": Math.round(apply.rssMiB),
        ...Object.fromEntries(sizes.flatMap((size, i) => [
          [`tar-diff ${i + 1} bytes`, size],
          ...(mode === "bsdiff"
            ? [[`reference ${i + 1} bytes`, ref[i]], [`ratio ${i + 1}`, Number((size / ref[i]).toFixed(3))]]
            : []),
        ])),
      };
    },
    floor: {
      label: "zstd -3 --patch-from of each changed layer tar",
      tools: ["zstd"],
      commands: () =>
        pairs.map(([o, n]) => ["zstd", "-q", "-3", "-c", "--long=27", "-M1024MB", `--patch-from=${o}`, n]),
    },
    reference: { label: "Go tar-diff of both layers", seconds: corpus.tarDiff.seconds, mib: corpus.tarDiff.mib },
    // Issue 15 (real-world): 8 s, 512 MiB, and tar-diffs no larger than on 2026-11-29 (bench/report.md of that day);
    // issue 21 (both corpora): bsdiff within 512 MiB and 0.4x the reference tar-diff's time.
    targets: mode === "bsdiff"
      ? corpus.far ? { rssMiB: 512, referenceRatio: 0.4 } : {
        wallSeconds: 8,
        rssMiB: 512,
        referenceRatio: 0.4,
        extra: { "ratio 1": 1.05, "ratio 2": 1.05, "tar-diff 1 bytes": 326851, "tar-diff 2 bytes": 5327414 },
      }
      // zstd: a third of bsdiff's target (issue 13 asks for 3x faster; compare the two medians of one run).
      : mode === "zstd"
      ? { wallSeconds: corpus.far ? undefined : 15, rssMiB: 1024 }
      : { wallSeconds: 45, rssMiB: 1536 },
  };
}

/**
 * The zstd dictionary decoder (ZstdDictDecoder, what applies tar-diff version
 * 2's ZstdDict ops) against `zstd -d --patch-from`, on a frame the real zstd
 * made of the corpus's new deno binary (95 MB) against the old one. Both sides
 * read the dictionary file and the frame; ours runs `bench/zstd_dict.ts --decode`.
 */
function zstdDictCase(): BenchCase {
  const files = (env: BenchEnv) => {
    const dir = `${env.cache}/zstd-dict`;
    return { dir, old: `${dir}/deno-old`, now: `${dir}/deno-new`, frame: `${dir}/deno.zst` };
  };
  return {
    name: "zstd-dict-decode",
    description: "decode a zstd --patch-from frame of the deno binary (95 MB) against its old version",
    corpus: true,
    tools: ["zstd"],
    async prepare(env) {
      const f = files(env);
      if (await Deno.stat(f.frame).catch(() => null)) return;
      await fresh(f.dir);
      for (const [image, out] of [["old", f.old], ["new", f.now]]) {
        const layers = await layoutLayers(`${env.corpus}/${image}`, image);
        const tar = layers[layers.length - 1].path; // the deno layer
        await sh(["sh", "-c", `tar -xzOf ${tar} opt/deno/deno > ${out}`]);
      }
      await sh(["zstd", "-q", "-f", "--long=27", `--patch-from=${f.old}`, f.now, "-o", f.frame]);
    },
    setup: () => Promise.resolve(),
    run: (env) => {
      const f = files(env);
      return [[
        Deno.execPath(),
        "run",
        "--allow-all",
        "--quiet",
        `${env.root}/bench/zstd_dict.ts`,
        "--decode",
        f.old,
        f.frame,
      ]];
    },
    bytes: (env) => Promise.resolve({ count: Deno.statSync(files(env).now).size, label: "decompressed" }),
    floor: {
      label: "zstd -d --patch-from",
      tools: ["zstd"],
      commands: (env) => {
        const f = files(env);
        return [["zstd", "-q", "-d", "-f", "--long=31", `--patch-from=${f.old}`, f.frame, "-o", "/dev/null"]];
      },
    },
  };
}

/** Export of the corpus new image to an oci-archive (gzip). */
function exportCase(): BenchCase {
  let layers: string[] = [];
  return {
    name: "export-archive",
    description: "export the corpus new image to an oci-archive (gzip)",
    corpus: true,
    async prepare(env) {
      layers = await newLayerTars(env);
    },
    setup: withCorpusImage("new"),
    run: (
      env,
      scratch,
    ) => [ds(env, "--repo", `${scratch}/repo`, "-q", "export", "new", `oci-archive:${scratch}/x.tar`)],
    verify: async (_env, scratch) => void await Deno.stat(`${scratch}/x.tar`),
    bytes: fileBytes(() => layers, "written"),
    floor: {
      label: "gzip -6 of every layer",
      tools: ["gzip"],
      commands: () => layers.map((l) => ["gzip", "-6", "-c", l]),
    },
  };
}

/**
 * Making the composefs image of the corpus new image (issue 12: under 0.2 s): a
 * fresh process builds it from the stored layers once (`bench/composefs_image.ts`);
 * the wall time includes that process's start, the `build ms` extra is the build
 * alone, which the target bounds.
 */
function composefsImageCase(): BenchCase {
  return {
    name: "composefs-image",
    description: "make the composefs image of the corpus new image from its stored layers",
    corpus: true,
    setup: withCorpusImage("new"),
    run: (env, scratch) => [[
      Deno.execPath(),
      "run",
      "--allow-all",
      "--quiet",
      `${env.root}/bench/composefs_image.ts`,
      `${scratch}/repo`,
      "new",
      `${scratch}/composefs.json`,
    ]],
    async extra(_env, scratch) {
      const made = JSON.parse(await Deno.readTextFile(`${scratch}/composefs.json`));
      return { "build ms": Math.round(made.ms), "image bytes": made.bytes };
    },
    targets: { extra: { "build ms": 200 } },
  };
}

/** Checkout of the corpus new image beside umoci raw unpack and tar -x of its layers. */
function checkoutCase(): BenchCase {
  let layers: string[] = [];
  return {
    name: "checkout",
    description: "check the corpus new image out into an empty directory",
    corpus: true,
    async prepare(env) {
      layers = await newLayerTars(env);
    },
    setup: withCorpusImage("new"),
    run: (env, scratch) => [ds(env, "--repo", `${scratch}/repo`, "-q", "checkout", "new", `${scratch}/rootfs`)],
    verify: async (_env, scratch) => void await Deno.stat(`${scratch}/rootfs/opt/deno/deno`),
    bytes: fileBytes(() => layers, "written"),
    floor: {
      label: "tar -x of the layer tars",
      tools: ["tar"],
      setup: async (_env, scratch) => await fresh(`${scratch}/tar`),
      commands: (_env, scratch) => layers.map((l) => ["tar", "-xf", l, "-C", `${scratch}/tar`]),
    },
    peer: {
      label: "umoci raw unpack",
      tools: ["umoci"],
      setup: (_env, scratch) => Deno.remove(`${scratch}/umoci`, { recursive: true }).catch(() => {}),
      commands: (env, scratch) => [
        ["umoci", "raw", "unpack", "--rootless", "--image", `${env.corpus}/new:new`, `${scratch}/umoci`],
      ],
    },
  };
}

/**
 * Pull, then delta-apply, of a synthetic one-file layer of `size` bytes: run at
 * 64 MiB, 1 GiB and 4 GiB, peak memory must not grow with the layer. The 4 GiB
 * cases carry issue 15's targets: peak within 16 MiB of the 64 MiB case's, time
 * per byte within 10% of the 1 GiB case's.
 */
function scalingCases(label: string, size: number): BenchCase[] {
  const relative = (kind: string) =>
    label === "4g"
      ? {
        relative: [
          { case: `scale-${kind}-64m`, rssMiBAbove: 16 },
          { case: `scale-${kind}-1g`, secondsPerByteRatio: 1.1 },
        ],
      }
      : undefined;
  let s: Synthetic;
  let oldLayer = "";
  const prepare = async (env: BenchEnv) => {
    s = await synthetic(env.cache, size);
    oldLayer = (await layoutLayers(s.old, "old"))[0].path;
  };
  return [
    {
      name: `scale-pull-${label}`,
      description: `pull one synthetic ${label} layer (zstd) into an empty repository`,
      corpus: false,
      prepare,
      setup: (_env, scratch) => fresh(scratch),
      run: (env, scratch) => [dsPull(env, `${scratch}/repo`, `oci:${s.old}:old`)],
      bytes: () => Promise.resolve({ count: s.tarSize, label: "stored" }),
      floor: {
        label: "zstd -dc + sha256sum",
        tools: ["zstd", "sha256sum"],
        // The old image's layer only (the layout holds the new one's too).
        commands: () => [["sh", "-c", `zstd -dc ${oldLayer} | sha256sum`]],
      },
      targets: relative("pull"),
    },
    {
      name: `scale-delta-${label}`,
      description: `apply a delta to one synthetic ${label} layer (64 KiB changed)`,
      corpus: false,
      prepare,
      async setup(env, scratch) {
        await fresh(scratch);
        await sh(dsPull(env, `${scratch}/repo`, `oci:${s.old}:old`));
      },
      run: (env, scratch) => [dsPull(env, `${scratch}/repo`, `oci:${s.delta}`, "new")],
      async verify(env, scratch) {
        const index = JSON.parse(await Deno.readTextFile(`${s.old}/index.json`));
        const want =
          index.manifests.find((m: { annotations: Record<string, string> }) =>
            m.annotations["org.opencontainers.image.ref.name"] === "new"
          ).digest;
        const got = await manifestOf(env, `${scratch}/repo`, "new");
        if (got !== want) throw new Error(`scaling delta gave ${got}, expected ${want}`);
      },
      bytes: () => Promise.resolve({ count: s.tarSize, label: "rebuilt" }),
      targets: relative("delta"),
    },
  ];
}

/** A tiny generated image, so the suite itself can be tested without the corpus. */
export const smokeCase: BenchCase = {
  name: "smoke",
  description: "pull a tiny generated image (tests the suite itself)",
  corpus: false,
  async prepare(env) {
    const { writeImage, sampleTar } = await import("../tests/helpers/oci.ts");
    const dir = `${env.cache}/smoke`;
    await fresh(dir);
    await writeImage(dir, { tag: "smoke", layers: [{ tar: sampleTar("a") }, { tar: sampleTar("b") }] });
  },
  setup: (_env, scratch) => fresh(scratch),
  run: (env, scratch) => [dsPull(env, `${scratch}/repo`, `oci:${env.cache}/smoke:smoke`)],
  verify: (env, scratch) => expectManifest(env, `${scratch}/repo`, "smoke", `${env.cache}/smoke`, "smoke"),
  floor: {
    label: "cat of the layout",
    commands: (env) => [["cat", `${env.cache}/smoke/index.json`]],
  },
};

/** Every case, in report order. */
export const CASES: BenchCase[] = [
  pullCase("pull-old-oci", "old", "oci"),
  pullCase("pull-old-archive", "old", "oci-archive"),
  registryPullCase(),
  deltaCase("delta-oci", "oci"),
  deltaCase("delta-archive", "oci-archive"),
  deltaCase("delta-registry", "docker"),
  partialCase("partial"),
  partialCase("full"),
  pullCase("pull-old-oci-64mib", "old", "oci", "64MiB"),
  deltaCase("delta-oci-64mib", "oci", "64MiB"),
  deltaCase("far-delta-oci", "oci", undefined, FAR),
  deltaCase("far-delta-registry", "docker", undefined, FAR),
  registryPullCase(FAR),
  applyDeltaCase(),
  createDeltaCase("bsdiff"),
  createDeltaCase("zstd"),
  createDeltaCase("auto"),
  createDeltaCase("bsdiff", FAR),
  createDeltaCase("zstd", FAR),
  zstdDictCase(),
  exportCase(),
  checkoutCase(),
  composefsImageCase(),
  ...scalingCases("64m", 64 << 20),
  ...scalingCases("1g", 1 << 30),
  ...scalingCases("4g", 4 * 2 ** 30),
  smokeCase,
];
