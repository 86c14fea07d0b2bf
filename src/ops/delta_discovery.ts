/**
 * Pulls that find deltas by themselves. Once the target image manifest is
 * resolved (platform chosen), a pull from a registry lists the target's
 * referrers of the oci-delta artifact type (referrers API, else the fallback
 * tag), keeps those whose `delta.source-config` names a config the repository
 * holds, fetches their (small) manifests, and applies the one with the fewest
 * bytes to download, when that is fewer than the full image's missing layers.
 * Anything else (nothing published, nothing fits, the listing or the delta
 * fails) pulls the full image, and says why in one line; `--delta require`
 * makes that an error.
 *
 * Documents fetched while choosing (the target's config, the delta manifests)
 * are kept for the pull that follows, so choosing costs the listing and the
 * candidates' manifests only.
 *
 * @module
 */
import { DeltashipError, NotFoundError, withContext } from "../errors.ts";
import { DELTA_ARTIFACT_TYPE, DeltaAnnotation } from "../delta/annotations.ts";
import { type DeltaArtifact, parseDeltaArtifact } from "../delta/artifact.ts";
import { type Descriptor, parseImageConfig, parseManifest } from "../oci/documents.ts";
import type { Repository } from "../repo/repository.ts";
import { DEFAULT_MAX_DOWNLOADS } from "../transport/docker/source.ts";
import type {
  FetchedDocument,
  ImageSource,
  ReferrerList,
  ReferrerOptions,
  ResolvedManifest,
} from "../transport/source.ts";
import { asManifestDigest, type DiffId, type Digest } from "../util/digest.ts";
import { applyDelta } from "./delta_pull.ts";
import { pullImage } from "./pull_image.ts";
import type { DiscoveryInfo, PullOptions, PullResult } from "./pull_steps.ts";

/** Delta manifests fetched at most while choosing. */
const MAX_CANDIDATES = 8;

/**
 * Pulls the image `resolved` (read from `source`), through a published delta
 * when one fits and `options.delta` allows it.
 */
export async function pullDiscovering(
  repo: Repository,
  source: ImageSource,
  resolved: ResolvedManifest,
  options: PullOptions,
): Promise<PullResult> {
  const mode = options.delta ?? "auto";
  if (mode === "never" || !source.referrers || await repo.hasImage(resolved.digest)) {
    if (mode === "require" && !source.referrers && !(await repo.hasImage(resolved.digest))) {
      throw new NotFoundError(`${source.description}: --delta require: only registries list deltas`);
    }
    return await pullImage(repo, source, resolved, options);
  }
  const cached = new DocumentCache(source);
  // A delta embeds its target manifest: the one already in hand.
  cached.keep({ digest: resolved.digest, size: resolved.bytes.length }, resolved.bytes);
  const info = await chooseDelta(repo, cached, resolved);
  if (info.chosen) {
    try {
      const result = await applyDelta(repo, cached, info.chosen, options);
      return { ...result, discovery: { ...info.discovery, way: "delta", delta: info.chosen.digest } };
    } catch (e) {
      if (mode === "require") throw withContext(e, `delta ${info.chosen.digest} to ${resolved.digest}`);
      info.discovery.reason = `delta ${info.chosen.digest} could not be applied: ${errorText(e)}`;
      source.defaultMaxDownloads?.(DEFAULT_MAX_DOWNLOADS);
    }
  }
  const reason = info.discovery.reason!;
  if (mode === "require") throw new NotFoundError(`${source.description} (${resolved.digest}): ${reason}`);
  if (!info.quiet) await options.onNote?.(`no delta used: ${reason}; pulling the full image`);
  const result = await pullImage(repo, cached, resolved, options);
  return { ...result, discovery: { ...info.discovery, way: "full", reason } };
}

/** The delta chosen (its manifest resolved), or why none was, and what was seen. */
interface Choice {
  chosen?: ResolvedManifest;
  discovery: DiscoveryInfo;
  /** Nothing to say: nothing was looked up (no image to start from, nothing to fetch), or nothing is published. */
  quiet?: boolean;
}

/** Lists the deltas to `resolved` and picks the one with the fewest bytes to download. */
async function chooseDelta(repo: Repository, source: DocumentCache, resolved: ResolvedManifest): Promise<Choice> {
  const discovery: DiscoveryInfo = { way: "full", via: "none", listed: 0, fitting: 0, missingBytes: 0 };
  const held = new Set<string>((await repo.listImages()).map((i) => i.config));
  const { manifest } = resolved;
  const configBytes = await source.document(manifest.config);
  const diffIds = parseImageConfig(configBytes, `${source.description}: config ${manifest.config.digest}`).rootfs
    .diff_ids;
  // The layers a full pull fetches: one per distinct diff_id the repository lacks.
  const missing = new Map<DiffId, Descriptor>();
  for (const [i, desc] of manifest.layers.entries()) {
    const d = diffIds[i];
    if (d !== undefined && !missing.has(d) && !(await repo.hasLayer(d))) missing.set(d, desc);
  }
  discovery.missingBytes = [...missing.values()].reduce((a, l) => a + l.size, 0);
  const fail = (reason: string, quiet = false): Choice => ({ discovery: { ...discovery, reason }, quiet });
  if (held.size === 0) return fail("the repository holds no image a delta could start from", true);
  if (discovery.missingBytes === 0) return fail("every layer is in the repository already", true);

  let list: ReferrerList;
  try {
    list = await source.referrers(resolved.digest, DELTA_ARTIFACT_TYPE, {
      annotations: [DeltaAnnotation.sourceConfig],
    });
  } catch (e) {
    return fail(`could not list deltas: ${errorText(e)}`);
  }
  discovery.via = list.via;
  discovery.listed = list.descriptors.length;
  const cut = list.truncated ? ` (the listing was cut short: ${list.truncated})` : "";
  if (list.truncated) discovery.truncated = list.truncated;
  // Most images have no delta: that is the common case, not worth a line.
  if (list.descriptors.length === 0) return fail(`no delta to ${resolved.digest} is published${cut}`, !cut);
  const fitting = list.descriptors.filter((d) => held.has(d.annotations?.[DeltaAnnotation.sourceConfig] ?? ""));
  discovery.fitting = fitting.length;
  if (fitting.length === 0) {
    return fail(
      `none of the ${list.descriptors.length} deltas to ${resolved.digest} starts from an image held here${cut}`,
    );
  }

  let best: { resolved: ResolvedManifest; bytes: number } | undefined;
  let skipped = "";
  for (const desc of fitting.slice(0, MAX_CANDIDATES)) {
    try {
      const candidate = await readCandidate(source, desc, resolved);
      const bytes = downloadBytes(candidate.artifact, missing);
      if (bytes === undefined) {
        skipped ||= `delta ${desc.digest} needs a layer it does not carry and the repository lacks`;
      } else if (!best || bytes < best.bytes || (bytes === best.bytes && desc.digest < best.resolved.digest)) {
        best = { resolved: candidate.resolved, bytes };
      }
    } catch (e) {
      skipped ||= `delta ${desc.digest} is not usable: ${errorText(e)}`;
    }
  }
  if (!best) return fail((skipped || "no delta fits") + cut);
  if (best.bytes >= discovery.missingBytes) {
    return fail(
      `the full image is no larger: its missing layers are ${discovery.missingBytes} bytes, ` +
        `the smallest delta's ${best.bytes}`,
    );
  }
  return { chosen: best.resolved, discovery };
}

/** Fetches and checks one listed delta: an oci-delta artifact whose target is the image asked for. */
async function readCandidate(
  source: ImageSource,
  desc: Descriptor,
  target: ResolvedManifest,
): Promise<{ resolved: ResolvedManifest; artifact: DeltaArtifact }> {
  const bytes = await source.document(desc);
  const digest = asManifestDigest(desc.digest);
  const what = `delta ${digest}`;
  const manifest = parseManifest(bytes, what);
  const artifact = parseDeltaArtifact(manifest, digest, what);
  if (artifact.target !== target.digest || (manifest.subject && manifest.subject.digest !== target.digest)) {
    throw new NotFoundError(`${what} builds ${artifact.target}, not ${target.digest}`);
  }
  const mediaType = manifest.mediaType ?? desc.mediaType;
  return { resolved: { bytes, digest, manifest, mediaType }, artifact };
}

/**
 * Bytes a delta makes the pull download: the blobs it ships for the layers the
 * repository lacks; undefined when one of those is not shipped (it cannot apply).
 */
function downloadBytes(artifact: DeltaArtifact, missing: Map<DiffId, Descriptor>): number | undefined {
  let n = 0;
  const counted = new Set<Digest>();
  for (const layer of missing.values()) {
    const shipped = artifact.layers.get(layer.digest);
    if (!shipped) return undefined;
    if (!counted.has(shipped.digest)) n += shipped.size;
    counted.add(shipped.digest);
  }
  return n;
}

/** An error as the one line a reason quotes. */
function errorText(e: unknown): string {
  return e instanceof DeltashipError ? e.message : `internal error: ${e instanceof Error ? e.message : String(e)}`;
}

/**
 * A source whose documents (manifests, configs) are kept once fetched, so the
 * pull after a choice does not fetch them again. Blobs pass straight through.
 */
class DocumentCache implements ImageSource {
  readonly #documents = new Map<string, Promise<Uint8Array>>();
  constructor(readonly inner: ImageSource) {}
  get description(): string {
    return this.inner.description;
  }
  get tag(): string | undefined {
    return this.inner.tag;
  }
  root(): Promise<FetchedDocument> {
    return this.inner.root();
  }
  /** Keeps `bytes` (already verified) as the document `desc` names. */
  keep(desc: Pick<Descriptor, "digest" | "size">, bytes: Uint8Array): void {
    this.#documents.set(`${desc.digest} ${desc.size}`, Promise.resolve(bytes));
  }
  document(desc: Descriptor): Promise<Uint8Array> {
    const key = `${desc.digest} ${desc.size}`;
    let p = this.#documents.get(key);
    if (!p) {
      p = this.inner.document(desc);
      p.catch(() => this.#documents.delete(key));
      this.#documents.set(key, p);
    }
    return p;
  }
  blob(desc: Descriptor): Promise<ReadableStream<Uint8Array>> {
    return this.inner.blob(desc);
  }
  referrers(subject: Digest, artifactType: string, options?: ReferrerOptions): Promise<ReferrerList> {
    return this.inner.referrers?.(subject, artifactType, options) ??
      Promise.resolve({ descriptors: [], via: "none" });
  }
  defaultMaxDownloads(n: number): void {
    this.inner.defaultMaxDownloads?.(n);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
