/**
 * The images create-delta works from: each found in the repository (`repo:`
 * references) or pulled there first, untagged, from its transport, since the
 * repository is where the old image's merged filesystem and the new image's
 * layer tars are read. The new image's transport stays open: its original
 * compressed blobs may be shipped in the delta.
 *
 * @module
 */
import type { Descriptor, Manifest, Platform } from "../oci/documents.ts";
import { parseImageConfig, parseManifest } from "../oci/documents.ts";
import type { ImageRecord, Repository } from "../repo/repository.ts";
import { type ImageReference, type OpenOptions, openSource } from "../transport/reference.ts";
import { type ImageSource, resolveManifest } from "../transport/source.ts";
import type { DiffId } from "../util/digest.ts";
import type { ProgressSink } from "../util/progress.ts";
import { pullDiscovering } from "./delta_discovery.ts";

/** An image to make a delta from or to: its repository record, and its source while that is open. */
export interface DeltaInput {
  record: ImageRecord;
  /** The transport it was pulled from (absent for `repo:` images, whose blobs are not kept). */
  source?: ImageSource;
}

/** How to find or pull an input. */
export interface InputOptions {
  platform: Platform;
  /** The platform was asked for: a single image must be for it too (see resolveManifest). */
  requirePlatform?: boolean;
  jobs: number;
  maxLayerSize?: number;
  openOptions?: OpenOptions;
  progress?: ProgressSink;
  /** Told before an image is pulled into the repository. */
  onPull?: (reference: string) => void | Promise<void>;
}

/** A source seen without its tag, so that pulling it for a delta leaves the repository's names alone. */
class UntaggedSource implements ImageSource {
  readonly tag = undefined;
  constructor(readonly inner: ImageSource) {}
  get description(): string {
    return this.inner.description;
  }
  root(): ReturnType<ImageSource["root"]> {
    return this.inner.root();
  }
  document(desc: Descriptor, signal?: AbortSignal): Promise<Uint8Array> {
    return this.inner.document(desc, signal);
  }
  get documentDeadlineMs(): number | undefined {
    return this.inner.documentDeadlineMs;
  }
  blob(desc: Descriptor): Promise<ReadableStream<Uint8Array>> {
    return this.inner.blob(desc);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
  get referrers(): ImageSource["referrers"] {
    return this.inner.referrers?.bind(this.inner);
  }
}

/**
 * Finds `ref` in the repository (a `repo:` reference) or pulls it there
 * (untagged) from its transport. The returned source is open; close it.
 */
export async function deltaInput(repo: Repository, ref: ImageReference, options: InputOptions): Promise<DeltaInput> {
  if (ref.transport === "repo") return { record: await repo.resolveImage(ref.image) };
  const source = await openSource(ref, options.openOptions);
  try {
    const resolved = await resolveManifest(source, options.platform, { requirePlatform: options.requirePlatform });
    if (!(await repo.hasImage(resolved.digest))) await options.onPull?.(ref.text);
    // A delta published to it from an image the repository holds saves the download (delta_discovery.ts).
    const result = await pullDiscovering(repo, new UntaggedSource(source), resolved, {
      platform: options.platform,
      jobs: options.jobs,
      progress: options.progress,
      maxLayerSize: options.maxLayerSize,
    });
    return { record: await repo.readImage(result.manifest), source };
  } catch (e) {
    await source.close();
    throw e;
  }
}

/** The new image's documents, read back from the repository. */
export interface TargetImage {
  record: ImageRecord;
  manifestBytes: Uint8Array;
  manifest: Manifest;
  configBytes: Uint8Array;
  diffIds: DiffId[];
}

/** Reads the stored image `record`'s manifest and config. */
export async function loadTarget(repo: Repository, record: ImageRecord): Promise<TargetImage> {
  const manifestBytes = await repo.readBlob(record.manifest);
  const manifest = parseManifest(manifestBytes, `manifest ${record.manifest}`);
  const configBytes = await repo.readBlob(record.config);
  const config = parseImageConfig(configBytes, `config ${record.config}`);
  return { record, manifestBytes, manifest, configBytes, diffIds: config.rootfs.diff_ids };
}
