/**
 * `pull`: the dispatcher. The source's reference is resolved to one manifest
 * (through indexes, choosing the platform); an oci-delta artifact is applied
 * (delta_pull.ts), anything else is pulled as an image (pull_image.ts), through
 * a delta published for it when one fits (delta_discovery.ts).
 *
 * @module
 */
import { isDeltaManifest } from "../delta/artifact.ts";
import { SignatureError } from "../errors.ts";
import { type ImageSource, resolveManifest } from "../transport/source.ts";
import type { Repository } from "../repo/repository.ts";
import { applyDelta } from "./delta_pull.ts";
import { pullDiscovering } from "./delta_discovery.ts";
import type { PullOptions, PullResult } from "./pull_steps.ts";

/**
 * Pulls the image `source` names into `repo`. When the manifest is an oci-delta
 * artifact, the delta is applied instead: the result is its target image. An
 * image is pulled through a delta the registry lists for it, when one fits
 * (`options.delta`).
 */
export async function pull(repo: Repository, source: ImageSource, options: PullOptions): Promise<PullResult> {
  const resolved = await resolveManifest(source, options.platform, { requirePlatform: options.requirePlatform });
  if (isDeltaManifest(resolved.manifest)) return await applyDelta(repo, source, resolved, options);
  if (options.verifyKey) {
    throw new SignatureError(
      `${source.description} (${resolved.digest}) is not an oci-delta artifact: --verify-key checks the signature a delta embeds`,
    );
  }
  return await pullDiscovering(repo, source, resolved, options);
}
