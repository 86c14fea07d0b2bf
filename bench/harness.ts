/**
 * The benchmark harness shared by the cases of `cases.ts`: what a case is
 * ({@link BenchCase}, with its floor and peer as {@link Measured} sides and its
 * {@link Targets}), the paths and deltaship command every case runs with
 * ({@link BenchEnv}), and the helpers cases are built from: fresh scratch
 * directories, commands, the layers and manifests of OCI layouts, and the
 * corpus layer tars floors read. `main.ts` measures the cases.
 *
 * @module
 */

/** Paths and the deltaship command, shared by every case. */
export interface BenchEnv {
  /** The project root. */
  root: string;
  /** bench/.cache: corpus and scratch space (git-ignored). */
  cache: string;
  /** The real-world corpus: `old/` and `new/` OCI layouts. */
  corpus: string;
  /** ../shared/bench: corpus script and the reference delta. */
  shared: string;
  /** How to start deltaship (`deno run -A main.ts`, or a compiled binary). */
  deltaship: string[];
}

/** Targets from the issues; a case misses when any is exceeded. */
export interface Targets {
  /** Median wall time, seconds. */
  wallSeconds?: number;
  /** Median peak memory, MiB. */
  rssMiB?: number;
  /** deltaship median / peer median. */
  peerRatio?: number;
  /** deltaship median / floor median. */
  floorRatio?: number;
  /** Upper bounds on numbers the case reports in `extra` (e.g. delta size ratios). */
  extra?: Record<string, number>;
  /** Bounds relative to other cases of the same run (issue 15's scaling targets). */
  relative?: RelativeTarget[];
}

/** A bound against another case measured in the same run (which must be selected too). */
export interface RelativeTarget {
  /** The other case's name. */
  case: string;
  /** Median peak memory at most the other's plus this many MiB. */
  rssMiBAbove?: number;
  /** Median seconds per byte (of `bytes`) at most this times the other's. */
  secondsPerByteRatio?: number;
}

/** Commands measured as one sample (times add up, memory is the largest). */
export interface Measured {
  label: string;
  tools?: string[];
  commands(env: BenchEnv, scratch: string): string[][];
  /** Runs before each sample of this side, untimed. */
  setup?(env: BenchEnv, scratch: string): Promise<void>;
}

/** One benchmark case. */
export interface BenchCase {
  name: string;
  description: string;
  /** Needs the real-world corpus. */
  corpus: boolean;
  /** External tools deltaship's side needs (besides deltaship). */
  tools?: string[];
  /** Once per bench run, untimed: build inputs, start servers. */
  prepare?(env: BenchEnv): Promise<void>;
  /** Once after the case, untimed: stop what prepare started. */
  finish?(): Promise<void>;
  /** Before each sample, untimed: fresh repository and so on. */
  setup(env: BenchEnv, scratch: string): Promise<void>;
  /** The deltaship commands measured. */
  run(env: BenchEnv, scratch: string): string[][];
  /** After a sample: check the result is right (throw if not). */
  verify?(env: BenchEnv, scratch: string): Promise<void>;
  /** Bytes that matter for throughput, and what they are. */
  bytes?(env: BenchEnv): Promise<{ count: number; label: string }>;
  floor?: Measured;
  peer?: Measured;
  targets?: Targets;
  /** Extra numbers to report (e.g. delta size). */
  extra?(env: BenchEnv, scratch: string): Promise<Record<string, number>>;
}

/** Removes and recreates a directory. */
export async function fresh(dir: string): Promise<void> {
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.mkdir(dir, { recursive: true });
}

/** The layer blobs of a layout's tagged manifest, with sizes and media types. */
export async function layoutLayers(
  dir: string,
  tag?: string,
): Promise<{ path: string; size: number; mediaType: string; digest: string }[]> {
  const index = JSON.parse(await Deno.readTextFile(`${dir}/index.json`));
  const entry = tag
    ? index.manifests.find((m: { annotations?: Record<string, string> }) =>
      m.annotations?.["org.opencontainers.image.ref.name"] === tag
    )
    : index.manifests[0];
  const manifest = JSON.parse(await Deno.readTextFile(`${dir}/blobs/sha256/${entry.digest.slice(7)}`));
  return manifest.layers.map((l: { digest: string; size: number; mediaType: string }) => ({
    path: `${dir}/blobs/sha256/${l.digest.slice(7)}`,
    size: l.size,
    mediaType: l.mediaType,
    digest: l.digest,
  }));
}

/** The manifest digest a repository holds for a tag (via `deltaship images --json`). */
export async function manifestOf(env: BenchEnv, repo: string, tag: string): Promise<string | undefined> {
  const out = await new Deno.Command(env.deltaship[0], {
    args: [...env.deltaship.slice(1), "--repo", repo, "--json", "images"],
    stdout: "piped",
  }).output();
  const images = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    tags?: string[];
    names?: string[];
    manifest: string;
  }[];
  return images.find((i) => (i.tags ?? i.names ?? []).includes(tag))?.manifest; // names: before issue 23
}

/** The deltaship command (as `BenchEnv.deltaship` starts it) with `args`. */
export const ds = (env: BenchEnv, ...args: string[]): string[] => [...env.deltaship, ...args];

/** The deltaship command that quietly pulls `args` (REF [NAME], options first) into the repository `repo`. */
export const dsPull = (env: BenchEnv, repo: string, ...args: string[]): string[] =>
  ds(env, "--repo", repo, "-q", "pull", ...args);

/** Throws unless the repository's `tag` is the manifest that layout `dir` tags `ref`. */
export async function expectManifest(
  env: BenchEnv,
  repo: string,
  tag: string,
  dir: string,
  ref: string,
): Promise<void> {
  const index = JSON.parse(await Deno.readTextFile(`${dir}/index.json`));
  const want =
    index.manifests.find((m: { annotations?: Record<string, string> }) =>
      m.annotations?.["org.opencontainers.image.ref.name"] === ref
    ).digest;
  const got = await manifestOf(env, repo, tag);
  if (got !== want) throw new Error(`pulled ${tag} is ${got}, expected ${want}`);
}

/** Runs a command, throwing when it fails; returns stdout bytes. */
export async function sh(cmd: string[], stdoutFile?: string): Promise<Uint8Array> {
  const out = await new Deno.Command(cmd[0], { args: cmd.slice(1), stdout: "piped", stderr: "piped" }).output();
  if (!out.success) throw new Error(`${cmd.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  if (stdoutFile) await Deno.writeFile(stdoutFile, out.stdout);
  return out.stdout;
}

/** The real-world delta's expected outcome (`realworld-expected.json` in the shared bench folder). */
export interface Expected {
  new_manifest: string;
  new_config: string;
  diff_ids: string[];
}

/**
 * The corpus new image's uncompressed layer tars, in order, written once under
 * bench/.cache/layers (decompressed from the layout's own blobs): what floors
 * hash and compress.
 */
export async function newLayerTars(env: BenchEnv): Promise<string[]> {
  const dir = `${env.cache}/layers`;
  await Deno.mkdir(dir, { recursive: true });
  const files = [];
  for (const layer of await layoutLayers(`${env.corpus}/new`, "new")) {
    const file = `${dir}/${layer.digest.slice(7)}.tar`;
    if (!(await Deno.stat(file).catch(() => null))) await sh(["gzip", "-dc", layer.path], file);
    files.push(file);
  }
  return files;
}

/** Throughput basis: the total size of the files `files()` lists (read when the case reports). */
export function fileBytes(
  files: () => string[],
  label: string,
): () => Promise<{ count: number; label: string }> {
  return () => Promise.resolve({ count: files().reduce((a, f) => a + Deno.statSync(f).size, 0), label });
}

/** Before each sample: a fresh repository holding the corpus image `image`. */
export function withCorpusImage(image: "old" | "new"): (env: BenchEnv, scratch: string) => Promise<void> {
  return async (env: BenchEnv, scratch: string) => {
    await fresh(scratch);
    await sh(dsPull(env, `${scratch}/repo`, `oci:${env.corpus}/${image}:${image}`));
  };
}
