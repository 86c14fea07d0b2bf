/**
 * `push`: writing to a registry. An image from the repository goes out as
 * `export` writes it (layers rebuilt, checked against their diff_ids and
 * compressed in blocks on the workers, the config byte for byte so the image
 * ID is unchanged, a new OCI manifest); what a layout reference names (an
 * image, an index with its images, any artifact, a delta) is copied byte for
 * byte. Blobs go first, at most `--max-uploads` at a time (each skipped when
 * the registry has it, mounted when another repository of it may, else
 * uploaded in chunks that survive dropped connections); manifests go last,
 * children before the index that names them; a manifest with a `subject` is
 * then kept discoverable (referrers API, else the fallback tag).
 *
 * @module
 */
import { FormatError } from "../errors.ts";
import {
  type Descriptor,
  documentKind,
  type Manifest,
  parseIndex,
  parseJson,
  parseManifest,
} from "../oci/documents.ts";
import { layerTypeFor, MediaType } from "../oci/media_types.ts";
import type { ImageRecord, Repository } from "../repo/repository.ts";
import type { DockerTarget, ReferrerRecord } from "../transport/docker/target.ts";
import type { UploadOutcome } from "../transport/docker/upload.ts";
import type { ImageSource } from "../transport/source.ts";
import { type Digest, sha256 } from "../util/digest.ts";
import { type ProgressSink, silentProgress } from "../util/progress.ts";
import type { LayerCompression } from "../compression/stages.ts";
import type { ArtifactBlob, ArtifactSink } from "./create_delta.ts";
import { distinctLayers, exportedLayer, exportedLayers, exportedManifest } from "./export.ts";
import { fanOut } from "./fan_out.ts";

/** How to push. */
export interface PushOptions {
  /** Layer compression of a repository image (default gzip). */
  compression: LayerCompression;
  level?: number;
  /** Threads compressing at once. */
  jobs: number;
  /** Blob uploads at once (as the target allows; default 2). */
  maxUploads?: number;
  /** Tag to push the image under; without one it is pushed by digest only. */
  tag?: string;
  /** Repositories of the same registry to mount blobs from. */
  mountFrom?: readonly string[];
  progress?: ProgressSink;
}

/** One blob of a push, and how it reached the registry. */
export interface PushedBlob {
  digest: Digest;
  size: number;
  outcome: UploadOutcome;
}

/** What a push did. */
export interface PushResult {
  /** `docker://REGISTRY/REPO`. */
  destination: string;
  tag?: string;
  /** Digest and media type of the manifest (or index) pushed last. */
  manifest: Digest;
  mediaType: string;
  /** The image's config, when the top document is an image manifest. */
  config?: Digest;
  /** Every blob, once: uploaded, already there, or mounted. */
  blobs: PushedBlob[];
  /** Manifests and indexes put, the top one included. */
  manifests: number;
  /** Blob bytes sent. */
  bytesUploaded: number;
  /** How manifests with a subject were made discoverable (absent when none had one). */
  referrer?: ReferrerRecord;
}

/** The destination of a result: the repository without tag. */
function destinationOf(target: DockerTarget): string {
  return `docker://${target.registry}/${target.repository}`;
}

/** Pushes image `record` from the repository, as export writes it. */
export async function pushStoredImage(
  repo: Repository,
  record: ImageRecord,
  target: DockerTarget,
  options: PushOptions,
): Promise<PushResult> {
  const source = parseManifest(await repo.readBlob(record.manifest), `manifest ${record.manifest}`);
  const configBytes = await repo.readBlob(record.config);
  const progress = options.progress ?? silentProgress;
  const mediaType = layerTypeFor(options.compression);
  const blobs: PushedBlob[] = [];
  const outcomes = new Map<Digest, UploadOutcome>();
  let sent = 0;
  const distinct = distinctLayers(record);
  const n = record.layers.length;
  const written = await fanOut(repo, distinct, {
    jobs: options.compression !== "none" ? options.jobs : 1,
    parallel: options.maxUploads ?? 2,
    inOrder: true,
    progress,
    // Progress counts the bytes sent (compressed), as the summary does; their total is known only uncompressed.
    unit: ({ diffId, tarSize, index }) => ({
      id: diffId,
      label: `layer ${index + 1}/${n}`,
      total: options.compression === "none" ? tarSize : 0,
      size: tarSize,
    }),
    note: ({ diffId }) => outcomes.get(diffId) ?? "uploaded",
    pool: { useCallingThread: false },
  }, async (pool, { diffId, tarSize, index }, onBytes) => {
    let annotations: Record<string, string> | undefined;
    const up = await target.pushBlob({
      what: `${target.description}: layer ${index + 1}/${n} (diff_id ${diffId})`,
      // Uncompressed, the blob is the tar itself: its digest is known, so the registry can be asked first.
      ...(options.compression === "none" ? { digest: diffId, size: tarSize } : {}),
      mountFrom: options.mountFrom,
      open: () => Promise.resolve(exportedLayer(repo, diffId, pool, options, () => {}, (a) => (annotations = a))),
    }, onBytes);
    sent += up.sent;
    blobs.push({ digest: up.digest, size: up.size, outcome: up.outcome });
    outcomes.set(diffId, up.outcome);
    return { mediaType, digest: up.digest, size: up.size, ...(annotations ? { annotations } : {}) } as Descriptor;
  });
  const done = new Map<Digest, Descriptor>(distinct.map((l, i) => [l.diffId, written[i]]));
  const layers = exportedLayers(record, source, done);
  const config = await pushKnownBlob(
    target,
    "config",
    {
      mediaType: MediaType.ociConfig,
      digest: record.config,
      size: configBytes.length,
    },
    () => Promise.resolve([configBytes]),
    options,
    progress,
  );
  blobs.push(config.blob);
  sent += config.sent;
  const bytes = exportedManifest(source, config.blob, layers);
  const put = await target.putManifest(bytes, MediaType.ociManifest, options.tag ?? sha256(bytes));
  const referrer = source.subject ? await target.recordReferrer(put, MediaType.ociManifest, source) : undefined;
  return {
    destination: destinationOf(target),
    ...(options.tag ? { tag: options.tag } : {}),
    manifest: put.digest,
    mediaType: MediaType.ociManifest,
    config: record.config,
    blobs,
    manifests: 1,
    bytesUploaded: sent,
    ...(referrer ? { referrer } : {}),
  };
}

/**
 * Copies what `source`'s reference names (a manifest, or an index and every
 * manifest under it) byte for byte: blobs, then manifests, the top one under
 * the tag.
 */
export async function pushFromSource(
  source: ImageSource,
  target: DockerTarget,
  options: PushOptions,
): Promise<PushResult> {
  const progress = options.progress ?? silentProgress;
  const root = await source.root();
  const tag = options.tag ?? source.tag; // the layout entry's own tag, once its root is read
  const state: CopyState = { blobs: new Map(), sent: 0, manifests: 0 };
  const top = await copyDocument(source, target, root, true, state, { ...options, tag }, progress);
  return {
    destination: destinationOf(target),
    ...(tag ? { tag } : {}),
    manifest: top.digest,
    mediaType: top.mediaType,
    ...(top.config ? { config: top.config } : {}),
    blobs: [...state.blobs.values()],
    manifests: state.manifests,
    bytesUploaded: state.sent,
    ...(state.referrer ? { referrer: state.referrer } : {}),
  };
}

/** What a copy has done so far. */
interface CopyState {
  blobs: Map<Digest, PushedBlob>;
  sent: number;
  manifests: number;
  referrer?: ReferrerRecord;
}

/** Most manifests nested under one index (indexes of indexes included). */
const MAX_DEPTH = 4;

/** Copies one manifest or index and everything it names; returns what was put. */
async function copyDocument(
  source: ImageSource,
  target: DockerTarget,
  doc: { bytes: Uint8Array; digest: Digest; mediaType?: string },
  isTop: boolean,
  state: CopyState,
  options: PushOptions,
  progress: ProgressSink,
  depth = 0,
): Promise<{ digest: Digest; mediaType: string; config?: Digest }> {
  const what = `${source.description} (${doc.digest})`;
  const raw = parseJson(doc.bytes, `${what} manifest`) as Record<string, unknown>;
  const kind = documentKind(raw, doc.mediaType);
  let mediaType: string;
  let config: Digest | undefined;
  let subject: Manifest | undefined;
  if (kind === "index") {
    if (depth >= MAX_DEPTH) throw new FormatError(`${what}: indexes nested deeper than ${MAX_DEPTH}`);
    const index = parseIndex(doc.bytes, `${what} index`);
    for (const child of index.manifests) {
      const bytes = await source.document(child);
      await copyDocument(source, target, { ...child, bytes }, false, state, options, progress, depth + 1);
    }
    mediaType = index.mediaType ?? doc.mediaType ?? MediaType.ociIndex;
    if ((raw.subject as Descriptor | undefined)?.digest) subject = raw as unknown as Manifest;
  } else {
    const manifest = parseManifest(doc.bytes, `${what} manifest`);
    const blobs = [...new Map([manifest.config, ...manifest.layers].map((d) => [d.digest, d])).values()];
    await inLanes(blobs.filter((d) => !state.blobs.has(d.digest)), options.maxUploads ?? 2, async (d) => {
      const label = d === manifest.config
        ? "config"
        : `layer ${manifest.layers.indexOf(d) + 1}/${manifest.layers.length}`;
      const up = await pushKnownBlob(target, label, d, () => source.blob(d), options, progress);
      state.blobs.set(d.digest, up.blob);
      state.sent += up.sent;
    });
    mediaType = manifest.mediaType ?? doc.mediaType ?? MediaType.ociManifest;
    config = manifest.config.digest;
    if (manifest.subject) subject = manifest;
  }
  const put = await target.putManifest(doc.bytes, mediaType, isTop && options.tag ? options.tag : doc.digest);
  state.manifests++;
  if (subject) state.referrer = await target.recordReferrer(put, mediaType, subject);
  return { digest: put.digest, mediaType, ...(config ? { config } : {}) };
}

/** Pushes one blob of known digest and size, shown as a progress unit `label` (`config`, `layer 2/3`). */
async function pushKnownBlob(
  target: DockerTarget,
  label: string,
  desc: Descriptor,
  open: () => Promise<AsyncIterable<Uint8Array> | Iterable<Uint8Array>>,
  options: Pick<PushOptions, "mountFrom">,
  progress: ProgressSink,
): Promise<{ blob: PushedBlob; sent: number }> {
  progress.start(desc.digest, label, desc.size);
  const up = await target.pushBlob({
    what: `${target.description}: ${label} ${desc.digest}`,
    digest: desc.digest,
    size: desc.size,
    mountFrom: options.mountFrom,
    open,
  }, (n) => progress.advance(desc.digest, n));
  progress.finish(desc.digest, up.outcome);
  return { blob: { digest: up.digest, size: up.size, outcome: up.outcome }, sent: up.sent };
}

/**
 * Runs `work` on each item, at most `lanes` at once; after a failure no item
 * starts, those running finish, and the first failure is thrown.
 */
async function inLanes<T>(items: readonly T[], lanes: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { e: unknown } | undefined;
  const lane = async () => {
    while (next < items.length && !failure) {
      const item = items[next++];
      try {
        await work(item);
      } catch (e) {
        failure ??= { e };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(lanes, items.length)) }, lane));
  if (failure) throw failure.e;
}

/**
 * create-delta's destination when it is a registry: each blob starts uploading
 * as it is handed over (at most `--max-uploads` at once); the manifest goes in
 * when all are in, and, since a delta's subject is its target image, is then
 * kept discoverable. Blobs already uploaded cannot be taken back on failure:
 * no manifest names them, and the registry's garbage collection removes them.
 */
export class RegistryArtifactSink implements ArtifactSink {
  readonly description: string;
  #pending: Promise<void>[] = [];
  readonly #state: CopyState = { blobs: new Map(), sent: 0, manifests: 0 };
  #result: PushResult | undefined;

  /** `options.tag`: what the artifact is tagged (default the destination's tag; none: by digest only). */
  constructor(
    readonly target: DockerTarget,
    readonly options: Pick<PushOptions, "mountFrom" | "progress" | "tag">,
  ) {
    this.description = destinationOf(target);
  }

  /** The tag the artifact is pushed under. */
  get tag(): string | undefined {
    return this.options.tag ?? this.target.tag;
  }

  /** What the push did, once committed. */
  get result(): PushResult | undefined {
    return this.#result;
  }

  putBlob(blob: ArtifactBlob): Promise<void> {
    const desc = { mediaType: "application/octet-stream", digest: blob.digest, size: blob.size };
    const open = async () => {
      const content = await blob.content();
      return content instanceof Uint8Array ? [content] : content;
    };
    const upload = pushKnownBlob(
      this.target,
      `blob ${this.#pending.length + 1}`,
      desc,
      open,
      this.options,
      this.#progress,
    )
      .then((up) => {
        this.#state.blobs.set(blob.digest, up.blob);
        this.#state.sent += up.sent;
      });
    upload.catch(() => {}); // awaited in commit
    this.#pending.push(upload);
    return Promise.resolve();
  }

  async commit(manifest: Descriptor, bytes: Uint8Array, tag: string | undefined): Promise<void> {
    await this.#settle();
    const parsed = parseManifest(bytes, `delta manifest ${manifest.digest}`);
    const put = await this.target.putManifest(bytes, manifest.mediaType, tag ?? manifest.digest);
    const referrer = parsed.subject ? await this.target.recordReferrer(put, manifest.mediaType, parsed) : undefined;
    this.#result = {
      destination: this.description,
      ...(tag ? { tag } : {}),
      manifest: put.digest,
      mediaType: manifest.mediaType,
      blobs: [...this.#state.blobs.values()],
      manifests: 1,
      bytesUploaded: this.#state.sent,
      ...(referrer ? { referrer } : {}),
    };
  }

  async abort(): Promise<void> {
    await Promise.allSettled(this.#pending);
  }

  get #progress(): ProgressSink {
    return this.options.progress ?? silentProgress;
  }

  /** Waits for every upload; the first failure is thrown. */
  async #settle(): Promise<void> {
    const outcomes = await Promise.allSettled(this.#pending);
    const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === "rejected");
    if (failed) throw failed.reason;
  }
}
