/**
 * Pulls that find deltas by themselves. Once the target image manifest is
 * resolved (platform chosen), a pull from a registry lists the target's
 * referrers of the oci-delta artifact type (referrers API, else the fallback
 * tag), keeps those whose `delta.source-config` names a config the repository
 * holds, fetches their (small) manifests and checks each against what it
 * claims (its own source config held, the target asked for, sizes that can
 * be), and applies the one with the fewest bytes to download, when that is
 * fewer than the full image's missing layers; when it fails, the next within
 * that budget. Anything else (nothing published, nothing fits, the listing or
 * every delta fails, looking takes longer than its deadline) pulls the full
 * image, and says why in one line; `--delta require` makes that an error.
 *
 * Documents fetched while choosing (the target's config, the delta manifests)
 * are kept for the pull that follows, so choosing costs the listing and the
 * candidates' manifests only.
 *
 * @module
 */
import { DeltashipError, FormatError, NotFoundError, TransportError, withContext } from "../errors.ts";
import { DELTA_ARTIFACT_TYPE, DeltaAnnotation } from "../delta/annotations.ts";
import { type DeltaArtifact, parseDeltaArtifact } from "../delta/artifact.ts";
import { type Descriptor, parseImageConfig, parseManifest } from "../oci/documents.ts";
import type { Repository } from "../repo/repository.ts";
import { TARDIFF_MAGIC, TARDIFF_MEDIA_TYPE } from "../tardiff/format.ts";
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
import { type DiscoveryInfo, type ImageLayer, layerLimits, type PullOptions, type PullResult } from "./pull_steps.ts";
import { type PartialPlans, planPartialLayers } from "./partial_layers.ts";
import { type ChunkedLayout, chunkedLayout } from "../chunked/annotations.ts";

/** Delta manifests fetched at most while choosing. */
const MAX_CANDIDATES = 8;
/** How long looking (listing and candidates) may take in all, in document deadlines. */
const DISCOVERY_DEADLINES = 2;
/** No tar-diff is smaller: its magic and one zstd frame (frame magic, header, one block header). */
const MIN_TARDIFF_SIZE = TARDIFF_MAGIC.length + 9;

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
  const info = await chooseDeltas(repo, cached, resolved);
  // Partial layers against the cheapest delta, by bytes to download (the TOCs tell them exactly).
  let plans: PartialPlans | undefined;
  let planned = 0; // bytes the planning fetched
  if (info.ranked.length > 0 && options.partial !== "never" && mode !== "require") {
    const layers = await missingImageLayers(repo, cached, resolved);
    // Planning costs the TOCs and tar-splits: not worth it when they alone cost more than the delta.
    if (partialFloor(layers) < info.ranked[0].bytes) {
      plans = await planPartialLayers(repo, cached, layers, layerLimits(options));
      for (const p of [...plans.partial.values(), ...plans.whole.values()]) planned += p.metadataBytes;
    }
    if (plans && plans.partial.size > 0) {
      const partialBytes = layers.reduce((n, l) => {
        const p = plans!.partial.get(l.desc.digest);
        const w = plans!.whole.get(l.desc.digest);
        return n + (p ? p.metadataBytes + p.frameBytes : l.desc.size + (w?.metadataBytes ?? 0));
      }, 0);
      info.discovery.partialBytes = partialBytes;
      if (partialBytes <= info.ranked[0].bytes) {
        const reason = `partial layers fetch ${partialBytes} bytes, the smallest delta ${info.ranked[0].bytes}`;
        await options.onNote?.(`no delta used: ${reason}`);
        const result = await pullImage(repo, cached, resolved, options, plans);
        return { ...result, discovery: { ...info.discovery, way: "full", reason } };
      }
    }
  }
  let failure: { error: unknown; delta: Digest } | undefined;
  let spent = 0;
  for (const [i, candidate] of info.ranked.entries()) {
    // A failed delta counts as fully downloaded: the next is tried only while the deltas stay cheaper than the image.
    if (spent + candidate.bytes >= info.discovery.missingBytes) break;
    try {
      const result = await applyDelta(repo, cached, candidate.resolved, options, resolved.digest);
      result.bytesFetched += planned;
      return { ...result, discovery: { ...info.discovery, way: "delta", delta: candidate.resolved.digest } };
    } catch (e) {
      failure = { error: e, delta: candidate.resolved.digest };
      spent += candidate.bytes;
      info.discovery.reason = `delta ${candidate.resolved.digest} could not be applied: ${errorText(e)}`;
      source.defaultMaxDownloads?.(DEFAULT_MAX_DOWNLOADS);
      const next = info.ranked[i + 1];
      if (next && spent + next.bytes < info.discovery.missingBytes) {
        await options.onNote?.(`${info.discovery.reason}; trying delta ${next.resolved.digest}`);
      }
    }
  }
  const reason = info.discovery.reason!;
  if (mode === "require") {
    if (failure) throw withContext(failure.error, `delta ${failure.delta} to ${resolved.digest}`);
    throw new NotFoundError(`${source.description} (${resolved.digest}): ${reason}`);
  }
  if (!info.quiet) await options.onNote?.(`no delta used: ${reason}; pulling the full image`);
  const result = await pullImage(repo, cached, resolved, options, plans);
  return { ...result, discovery: { ...info.discovery, way: "full", reason } };
}

/**
 * The least a pull with partial layers can fetch: the metadata of the
 * zstd:chunked layers (their annotations say its size), the others whole.
 */
function partialFloor(layers: readonly ImageLayer[]): number {
  let n = 0;
  for (const { desc } of layers) {
    let layout: ChunkedLayout | undefined;
    try {
      layout = chunkedLayout(desc.annotations, desc.size, `layer ${desc.digest}`);
    } catch {
      layout = undefined;
    }
    n += layout?.tarSplit ? layout.toc.length + layout.tarSplit.length : desc.size;
  }
  return n;
}

/** The layers of `resolved` a pull fetches: one per distinct diff_id the repository lacks. */
async function missingImageLayers(
  repo: Repository,
  source: ImageSource,
  resolved: ResolvedManifest,
): Promise<ImageLayer[]> {
  const { manifest } = resolved;
  const config = parseImageConfig(
    await source.document(manifest.config),
    `${source.description}: config ${manifest.config.digest}`,
  );
  const out: ImageLayer[] = [];
  const seen = new Set<DiffId>();
  for (const [index, desc] of manifest.layers.entries()) {
    const diffId = config.rootfs.diff_ids[index];
    if (diffId === undefined || seen.has(diffId)) continue;
    seen.add(diffId);
    if (!(await repo.hasLayer(diffId))) out.push({ index, desc, diffId });
  }
  return out;
}

/** A delta that may be applied: its manifest resolved, and the bytes it makes the pull download. */
interface Candidate {
  resolved: ResolvedManifest;
  bytes: number;
}

/** The deltas to try, cheapest first, or why there are none, and what was seen. */
interface Choice {
  ranked: Candidate[];
  discovery: DiscoveryInfo;
  /** Nothing to say: nothing was looked up (no image to start from, nothing to fetch), or nothing is published. */
  quiet?: boolean;
}

/**
 * Lists the deltas to `resolved`, checks those that start from a config the
 * repository holds, and ranks the usable ones by bytes to download. The
 * listing and the candidates' manifests share one deadline.
 */
async function chooseDeltas(repo: Repository, source: DocumentCache, resolved: ResolvedManifest): Promise<Choice> {
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
  const fail = (reason: string, quiet = false): Choice => ({ ranked: [], discovery: { ...discovery, reason }, quiet });
  if (held.size === 0) return fail("the repository holds no image a delta could start from", true);
  if (discovery.missingBytes === 0) return fail("every layer is in the repository already", true);

  const ms = source.documentDeadlineMs === undefined ? undefined : DISCOVERY_DEADLINES * source.documentDeadlineMs;
  const deadline = new AbortController();
  const timer = ms === undefined ? undefined : setTimeout(() => {
    const why = `looking for deltas took longer than ${ms / 1000} s (twice DELTASHIP_HTTP_DEADLINE_MS)`;
    deadline.abort(new TransportError(why));
  }, ms);
  try {
    const looking = look(source, resolved, held, missing, discovery, deadline.signal);
    looking.catch(() => {}); // when the deadline wins the race below, whatever it was doing is dropped
    const outcome = await Promise.race([looking, aborted(deadline.signal)]);
    if (outcome === undefined) return fail(errorText(deadline.signal.reason));
    if ("failed" in outcome) return fail(outcome.failed, outcome.quiet);
    return { ranked: outcome.ranked, discovery };
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves (to undefined) when `signal` aborts. */
function aborted(signal: AbortSignal): Promise<undefined> {
  return new Promise((resolve) => signal.addEventListener("abort", () => resolve(undefined), { once: true }));
}

/** The listing and the candidates: ranked candidates, or why there are none. */
async function look(
  source: DocumentCache,
  resolved: ResolvedManifest,
  held: Set<string>,
  missing: Map<DiffId, Descriptor>,
  discovery: DiscoveryInfo,
  signal: AbortSignal,
): Promise<{ ranked: Candidate[] } | { failed: string; quiet?: boolean }> {
  let list: ReferrerList;
  try {
    list = await source.referrers(resolved.digest, DELTA_ARTIFACT_TYPE, {
      annotations: [DeltaAnnotation.sourceConfig],
      signal,
    });
  } catch (e) {
    return { failed: `could not list deltas: ${errorText(signal.aborted ? signal.reason : e)}` };
  }
  discovery.via = list.via;
  discovery.listed = list.descriptors.length;
  const cut = list.truncated ? ` (the listing was cut short: ${list.truncated})` : "";
  if (list.truncated) discovery.truncated = list.truncated;
  // Most images have no delta: that is the common case, not worth a line.
  if (list.descriptors.length === 0) {
    return { failed: `no delta to ${resolved.digest} is published${cut}`, quiet: !cut };
  }
  const fitting = list.descriptors.filter((d) => held.has(d.annotations?.[DeltaAnnotation.sourceConfig] ?? ""));
  discovery.fitting = fitting.length;
  if (fitting.length === 0) {
    return {
      failed:
        `none of the ${list.descriptors.length} deltas to ${resolved.digest} starts from an image held here${cut}`,
    };
  }

  const ranked: Candidate[] = [];
  let skipped = "";
  for (const desc of fitting.slice(0, MAX_CANDIDATES)) {
    try {
      const candidate = await readCandidate(source, desc, resolved, held, signal);
      const bytes = downloadBytes(candidate.artifact, missing);
      if (bytes === undefined) {
        skipped ||= `delta ${desc.digest} needs a layer it does not carry and the repository lacks`;
      } else ranked.push({ resolved: candidate.resolved, bytes });
    } catch (e) {
      if (signal.aborted) throw e;
      skipped ||= `delta ${desc.digest} is not usable: ${errorText(e)}`;
    }
  }
  if (ranked.length === 0) return { failed: (skipped || "no delta fits") + cut };
  // Fewest bytes first; ties to the smaller digest, so every host decides alike.
  ranked.sort((a, b) => a.bytes - b.bytes || (a.resolved.digest < b.resolved.digest ? -1 : 1));
  if (ranked[0].bytes >= discovery.missingBytes) {
    return {
      failed: `the full image is no larger: its missing layers are ${discovery.missingBytes} bytes, ` +
        `the smallest delta's ${ranked[0].bytes}`,
    };
  }
  return { ranked };
}

/**
 * Fetches one listed delta and checks it against what it claims and what the
 * pull needs: an oci-delta artifact that builds the image asked for (its
 * target's digest and size), made from a config the repository holds (its own
 * `source-config`, whatever the listing said), shipping blobs of sizes that
 * can be. What it would cost is reckoned from its manifest: only honest sizes
 * may win the choice.
 */
async function readCandidate(
  source: ImageSource,
  desc: Descriptor,
  target: ResolvedManifest,
  held: Set<string>,
  signal: AbortSignal,
): Promise<{ resolved: ResolvedManifest; artifact: DeltaArtifact }> {
  const bytes = await source.document(desc, signal);
  const digest = asManifestDigest(desc.digest);
  const what = `delta ${digest}`;
  const manifest = parseManifest(bytes, what);
  const artifact = parseDeltaArtifact(manifest, digest, what);
  const built = artifact.manifest;
  if (
    artifact.target !== target.digest || built.size !== target.bytes.length ||
    (manifest.subject && manifest.subject.digest !== target.digest)
  ) {
    throw new NotFoundError(
      `${what} builds ${artifact.target} (${built.size} bytes), not ${target.digest} (${target.bytes.length} bytes)`,
    );
  }
  if (!held.has(artifact.sourceConfig)) {
    throw new NotFoundError(
      `${what} starts from config ${artifact.sourceConfig}, which the repository does not hold ` +
        `(its listing entry said ${desc.annotations?.[DeltaAnnotation.sourceConfig]})`,
    );
  }
  for (const layer of target.manifest.layers) {
    const shipped = artifact.layers.get(layer.digest);
    if (shipped?.mediaType === TARDIFF_MEDIA_TYPE && shipped.size < MIN_TARDIFF_SIZE) {
      throw new FormatError(`${what} ships a ${shipped.size}-byte tar-diff for layer ${layer.digest}: too small`);
    }
    if (shipped?.digest === layer.digest && shipped.size !== layer.size) {
      throw new FormatError(`${what} ships layer ${layer.digest} as ${shipped.size} bytes; it is ${layer.size}`);
    }
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
  get documentDeadlineMs(): number | undefined {
    return this.inner.documentDeadlineMs;
  }
  /** Keeps `bytes` (already verified) as the document `desc` names. */
  keep(desc: Pick<Descriptor, "digest" | "size">, bytes: Uint8Array): void {
    this.#documents.set(`${desc.digest} ${desc.size}`, Promise.resolve(bytes));
  }
  document(desc: Descriptor, signal?: AbortSignal): Promise<Uint8Array> {
    const key = `${desc.digest} ${desc.size}`;
    let p = this.#documents.get(key);
    if (!p) {
      p = this.inner.document(desc, signal);
      p.catch(() => this.#documents.delete(key));
      this.#documents.set(key, p);
    }
    return p;
  }
  blob(desc: Descriptor): Promise<ReadableStream<Uint8Array>> {
    return this.inner.blob(desc);
  }
  get rangePolicy(): ImageSource["rangePolicy"] {
    return this.inner.rangePolicy;
  }
  get blobRanges(): ImageSource["blobRanges"] {
    const inner = this.inner;
    return inner.blobRanges ? (desc, ranges, stats) => inner.blobRanges!(desc, ranges, stats) : undefined;
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
