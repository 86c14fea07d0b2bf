/**
 * `deno task fixtures [OUT]`: builds oci-delta test cases (default OUT:
 * testdata/generated): for each, an old and a new image (OCI layouts tagged
 * `old` and `new`), the delta between them (`delta/`, a layout holding the
 * artifact) and `expected.json` (`new_manifest`, `new_config`, `diff_ids`,
 * `delta_manifest`, `made_with`).
 *
 * Deltas are made with an external `oci-delta` binary when one is on PATH or
 * named by OCI_DELTA, otherwise with deltaship's own create-delta; the script
 * says which. Images are deterministic (fixed timestamps, seeded content), so
 * the same tool makes the same bytes.
 *
 * The reference fixtures in testdata/oci-delta/ were made with the Go tools and
 * are not touched by this script.
 *
 * @module
 */
import { main } from "../src/cli/main.ts";
import { writeImage } from "../tests/helpers/oci.ts";
import { randomPair } from "../tests/helpers/random_images.ts";
import { buildTar, type TarSpec } from "../tests/helpers/tar.ts";

const enc = new TextEncoder();

/** One case: the layers of its old and new images. */
interface Case {
  name: string;
  what: string;
  old: { tar: Uint8Array; compression?: "gzip" | "zstd" | "none" }[];
  new: { tar: Uint8Array; compression?: "gzip" | "zstd" | "none" }[];
}

/** Deterministic noise (xorshift). */
function noise(seed: number, n: number): Uint8Array {
  let x = seed || 1;
  return Uint8Array.from({ length: n }, () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x & 0xff;
  });
}

/** A binary-looking blob: records of counters and small values. */
function binary(seed: number, n: number): Uint8Array {
  const r = noise(seed, n);
  return r.map((v, i) => (i % 16 < 4 ? (i >> 4) & 0xff : v & 0x1f));
}

function text(lines: number, tag: string): string {
  return Array.from({ length: lines }, (_, i) => `${tag} line ${i}: the quick brown fox ${i * 7 % 13}\n`).join("");
}

function patched(data: Uint8Array, at: number[]): Uint8Array {
  const out = data.slice();
  for (const i of at) out[i] ^= 0x5a;
  return out;
}

/** The cases, in the spirit of the reference fixtures, plus seeded random pairs. */
export function cases(): Case[] {
  const base = buildTar([
    { path: "etc/", type: "dir" },
    { path: "etc/os-release", content: "ID=fixture\nVERSION_ID=1\n" },
    { path: "usr/", type: "dir" },
    { path: "usr/share/base.txt", content: text(200, "base") },
  ]);
  const app1 = binary(1, 120_000);
  const app2 = patched(app1, [100, 5000, 77_777]);
  const list: Case[] = [];

  list.push({
    name: "basic",
    what: "one reused layer, one changed file (tar-diff), one brand-new layer",
    old: [{ tar: base }, { tar: buildTar([{ path: "usr/bin/app", content: app1, mode: 0o755 }]) }],
    new: [
      { tar: base },
      { tar: buildTar([{ path: "usr/bin/app", content: app2, mode: 0o755 }]) },
      { tar: buildTar([{ path: "srv/new.txt", content: text(50, "new") }]) },
    ],
  });

  const oldEdits: TarSpec[] = [];
  const newEdits: TarSpec[] = [];
  for (let i = 0; i < 20; i++) {
    const body = text(40 + i, `file${i}`);
    oldEdits.push({ path: `opt/docs/file${i}.txt`, content: body });
    if (i % 5 === 0) continue; // deleted
    const edited = i % 2 ? body.replace("line 3:", "line three:") : body;
    newEdits.push({ path: i % 7 === 0 ? `opt/moved/file${i}.txt` : `opt/docs/file${i}.txt`, content: edited });
  }
  const bin1 = binary(2, 300_000);
  const longPath = "opt/" + "deep/".repeat(30) + "file.txt";
  list.push({
    name: "edits",
    what: "text edits, renames, deletions, a modified 300 KB binary, links, empty file, PAX path, non-ASCII name",
    old: [{
      tar: buildTar([
        ...oldEdits,
        { path: "opt/bin/tool", content: bin1, mode: 0o755 },
        { path: longPath, content: "long\n" },
        { path: "opt/ünïcödé.txt", content: text(10, "u") },
      ]),
    }],
    new: [{
      tar: buildTar([
        ...newEdits,
        { path: "opt/bin/tool", content: patched(bin1, [1, 2, 3, 150_000, 299_000]), mode: 0o755 },
        { path: "opt/bin/tool-link", type: "symlink", linkname: "tool" },
        { path: "opt/bin/tool-hard", type: "hardlink", linkname: "opt/bin/tool" },
        { path: "opt/empty", content: "" },
        { path: longPath, content: "longer\n" },
        { path: "opt/ünïcödé.txt", content: text(11, "u") },
      ]),
    }],
  });

  const w1 = buildTar([
    { path: "data/keep.bin", content: binary(3, 150_000) },
    { path: "data/gone.bin", content: binary(4, 50_000) },
    { path: "data/replaced.bin", content: binary(5, 60_000) },
  ]);
  const w2 = buildTar([
    { path: "data/.wh.gone.bin", content: "" },
    { path: "data/replaced.bin", content: binary(6, 50_000) },
  ]);
  list.push({
    name: "whiteouts",
    what: "a two-layer source where layer 2 deletes one file and replaces another",
    old: [{ tar: w1 }, { tar: w2 }],
    new: [{ tar: w1 }, { tar: w2 }, {
      tar: buildTar([
        { path: "data/gone.bin", content: patched(binary(4, 50_000), [10]) },
        { path: "data/replaced.bin", content: patched(binary(6, 50_000), [20]) },
        { path: "data/keep.bin", content: patched(binary(3, 150_000), [30]) },
      ]),
    }],
  });

  list.push({
    name: "fallback",
    what: "a brand-new layer of noise (shipped as its original blob by oci-delta) beside a tar-diff layer",
    old: [{ tar: buildTar([{ path: "usr/bin/app", content: app1 }]) }],
    new: [
      { tar: buildTar([{ path: "var/noise.bin", content: noise(9, 100_000) }]) },
      { tar: buildTar([{ path: "usr/bin/app", content: app2 }]) },
    ],
  });

  for (const seed of [1, 2]) {
    const pair = randomPair(seed);
    list.push({
      name: `random-${seed}`,
      what: `seeded random trees (seed ${seed}): links, whiteouts, edits, renames across layers`,
      old: pair.oldLayers.map((tar) => ({ tar })),
      new: pair.newLayers.map((tar) => ({ tar })),
    });
  }
  return list;
}

/** Where the oci-delta binary is, if anywhere. */
export function ociDeltaBinary(): string | undefined {
  const named = Deno.env.get("OCI_DELTA");
  if (named) return named;
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      if (Deno.statSync(`${dir}/oci-delta`).isFile) return `${dir}/oci-delta`;
    } catch { /* not here */ }
  }
  return undefined;
}

async function createWithDeltaship(dir: string, repo: string): Promise<void> {
  const silent = { isTerminal: false, write: () => Promise.resolve() };
  const errors: string[] = [];
  const code = await main(
    ["--repo", repo, "--quiet", "create-delta", `oci:${dir}/old:old`, `oci:${dir}/new:new`, `oci:${dir}/delta`],
    {
      stdout: silent,
      stderr: { isTerminal: false, write: (b) => (errors.push(new TextDecoder().decode(b)), Promise.resolve()) },
      env: { HOME: Deno.env.get("HOME") },
    },
  );
  if (code !== 0) throw new Error(`create-delta failed for ${dir}: ${errors.join("")}`);
}

async function createWithOciDelta(binary: string, dir: string): Promise<void> {
  const out = await new Deno.Command(binary, {
    args: ["create", `oci:${dir}/old`, `oci:${dir}/new`, `oci:${dir}/delta`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`${binary} create failed for ${dir}: ${new TextDecoder().decode(out.stderr)}`);
}

/** The tool {@link generate} makes deltas with: an oci-delta binary, else deltaship's create-delta. */
export function deltaTool(): { binary?: string; name: string } {
  const binary = ociDeltaBinary();
  return binary ? { binary, name: `oci-delta (${binary})` } : { name: "deltaship create-delta" };
}

/** The single image a layout's index.json lists last: its manifest digest and bytes. */
async function layoutImage(dir: string): Promise<{ digest: string; doc: { config: { digest: string } } }> {
  const index = JSON.parse(await Deno.readTextFile(`${dir}/index.json`));
  const digest: string = index.manifests.at(-1).digest;
  return { digest, doc: JSON.parse(await Deno.readTextFile(`${dir}/blobs/sha256/${digest.slice(7)}`)) };
}

/**
 * Makes one case's delta: `dir/delta` from the images in `dir/old` (tag `old`)
 * and `dir/new` (tag `new`), with `tool` (deltaship's needs a repository
 * directory, `repo`), and writes `dir/expected.json` from the layouts as they
 * are on disk: the new image's manifest, config and diff_ids, and the delta's
 * manifest. Returns what it wrote.
 */
export async function makeDelta(
  dir: string,
  tool: ReturnType<typeof deltaTool>,
  repo: string,
): Promise<Record<string, unknown>> {
  if (tool.binary) await createWithOciDelta(tool.binary, dir);
  else await createWithDeltaship(dir, repo);
  const neu = await layoutImage(`${dir}/new`);
  const config = JSON.parse(await Deno.readTextFile(`${dir}/new/blobs/sha256/${neu.doc.config.digest.slice(7)}`));
  const expected = {
    new_manifest: neu.digest,
    new_config: neu.doc.config.digest,
    diff_ids: config.rootfs.diff_ids,
    delta_manifest: (await layoutImage(`${dir}/delta`)).digest,
    made_with: tool.name,
  };
  await Deno.writeFile(`${dir}/expected.json`, enc.encode(JSON.stringify(expected, null, 1) + "\n"));
  return expected;
}

/** Builds every case under `out`; returns the tool used ("oci-delta PATH" or "deltaship create-delta"). */
export async function generate(out: string, log: (line: string) => void = () => {}): Promise<string> {
  const tool = deltaTool();
  log(`making deltas with ${tool.name}`);
  const repo = await Deno.makeTempDir({ prefix: "deltaship-fixtures-" });
  try {
    for (const c of cases()) {
      const dir = `${out}/${c.name}`;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      await writeImage(`${dir}/old`, { tag: "old", layers: c.old });
      await writeImage(`${dir}/new`, { tag: "new", layers: c.new });
      await makeDelta(dir, tool, `${repo}/repo`);
      log(`${c.name}: ${c.what}`);
    }
  } finally {
    await Deno.remove(repo, { recursive: true }).catch(() => {});
  }
  return tool.name;
}

if (import.meta.main) {
  const out = Deno.args[0] ?? new URL("./generated", import.meta.url).pathname;
  await generate(out, (line) => console.log(line));
  console.log(`wrote ${out}`);
}
