/**
 * `apply-delta`: apply an oci-delta against the repository's source image and
 * write the rebuilt image out as an OCI layout or archive, as `oci-delta apply`
 * does. The target goes through the repository (where every layer is checked
 * against its diff_id) and is exported from there; it stays in the repository
 * unless the caller asks otherwise.
 *
 * @module
 */
import { UnsupportedError } from "../errors.ts";
import type { Platform } from "../oci/documents.ts";
import type { LayoutDest } from "../oci/layout_writer.ts";
import { exportImage, type ExportResult } from "./export.ts";
import type { PullResult } from "./pull_steps.ts";
import type { Repository } from "../repo/repository.ts";
import { type ImageSource, resolveManifest } from "../transport/source.ts";
import type { Cleanups } from "../util/cleanups.ts";
import type { ProgressSink } from "../util/progress.ts";
import type { LayerCompression } from "../compression/stages.ts";
import { applyDelta } from "./delta_pull.ts";
import { isDeltaManifest, parseDeltaArtifact } from "../delta/artifact.ts";
import { pullDiscovering } from "./delta_discovery.ts";

/** How to apply and write out. */
export interface ApplyToLayoutOptions {
  platform: Platform;
  jobs: number;
  /** Tag for the target in the repository (when kept). */
  name?: string;
  /** Largest uncompressed layer accepted. */
  maxLayerSize?: number;
  /** Bytes of source files the rebuilds may hold at once (see ops/memory_plan.ts). */
  sourceMemory?: number;
  /** The `--memory-limit` that `sourceMemory` and `jobs` were planned for. */
  memoryLimit?: number;
  /** Keep the target image in the repository (default true). */
  keep: boolean;
  compression: LayerCompression;
  level?: number;
  progress?: ProgressSink;
  cleanups?: Cleanups;
  /** The delta must embed a signature of its target that verifies with this key. */
  verifyKey?: CryptoKey;
}

/** What apply-delta did. */
export interface ApplyToLayoutResult {
  pulled: PullResult;
  exported: ExportResult;
  /** The target image is in the repository afterwards. */
  kept: boolean;
}

/** Applies the delta `source` names and writes the target image to `dest`. */
export async function applyDeltaToLayout(
  repo: Repository,
  source: ImageSource,
  dest: LayoutDest,
  options: ApplyToLayoutOptions,
): Promise<ApplyToLayoutResult> {
  const resolved = await resolveManifest(source, options.platform);
  const pullOptions = {
    platform: options.platform,
    jobs: options.jobs,
    name: options.keep ? options.name : undefined,
    progress: options.progress,
    maxLayerSize: options.maxLayerSize,
    sourceMemory: options.sourceMemory,
    memoryLimit: options.memoryLimit,
    verifyKey: options.verifyKey,
  };
  const isDelta = isDeltaManifest(resolved.manifest);
  if (!isDelta && !source.referrers) {
    throw new UnsupportedError(
      `${source.description} (${resolved.digest}) is not an oci-delta artifact; to write out an image use pull, then export`,
    );
  }
  const target = isDelta
    ? parseDeltaArtifact(resolved.manifest, resolved.digest, `delta ${source.description}`).target
    : resolved.digest;
  const hadTarget = await repo.hasImage(target);
  // An image in a registry: the delta to it is found among its referrers (one must fit).
  const pulled: PullResult = isDelta
    ? await applyDelta(repo, source, resolved, pullOptions)
    : await pullDiscovering(repo, source, resolved, { ...pullOptions, delta: "require" });
  const removeIfNew = async () => {
    if (!options.keep && !hadTarget) await repo.discardUntagged(target);
  };
  using _interrupted = options.cleanups?.add(removeIfNew);
  try {
    const exported = await exportImage(repo, await repo.readImage(target), dest, {
      compression: options.compression,
      level: options.level,
      jobs: options.jobs,
      progress: options.progress,
      cleanups: options.cleanups,
    });
    return { pulled, exported, kept: options.keep || hadTarget };
  } finally {
    await removeIfNew();
  }
}
