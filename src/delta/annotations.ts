/**
 * Names used by oci-delta artifacts: the artifact type and the annotations that
 * tie a delta to its source and target images. Shared by delta apply and create.
 *
 * @module
 */

/** `artifactType` of an oci-delta manifest. */
export const DELTA_ARTIFACT_TYPE = "application/vnd.io.github.containers.oci-delta.v1";

/** Annotation keys of oci-delta artifacts. */
export const DeltaAnnotation = {
  /** Digest of the target image manifest. */
  target: "io.github.containers.delta.target",
  /** Digest of the source image manifest. */
  source: "io.github.containers.delta.source",
  /** Digest of the source image config: how a client finds the source it holds. */
  sourceConfig: "io.github.containers.delta.source-config",
  /** JSON array of target layer digests the client must already have. */
  reused: "io.github.containers.delta.reused",
  /** JSON array of the diff_ids of those reused layers, same order. */
  reusedDiffId: "io.github.containers.delta.reused-diff-id",
  /** Per-layer: what the blob is (see {@link DeltaContent}). */
  content: "io.github.containers.delta.content",
  /** Per-layer (image-layer): the target layer's blob digest. */
  to: "io.github.containers.delta.to",
} as const;

/** Values of the per-layer `delta.content` annotation. */
export const DeltaContent = {
  imageManifest: "image-manifest",
  imageConfig: "image-config",
  imageLayer: "image-layer",
  cosignSignature: "cosign-signature",
  cosignSignatureContent: "cosign-signature-content",
} as const;

/** The separator of the tag create-delta gives a delta by default: `OLDTAG-to-NEWTAG`. */
const DELTA_TAG_JOIN = "-to-";

/** The tag create-delta gives a delta from the image tagged `from` to the one tagged `to`. */
export function deltaTag(from: string, to: string): string {
  return `${from}${DELTA_TAG_JOIN}${to}`;
}

/**
 * The source tag a delta's own tag names, when it has create-delta's form
 * `OLDTAG-to-NEWTAG` (once, so that the split is unambiguous); else undefined.
 * The delta manifest itself records only digests (as oci-delta writes it).
 */
export function sourceTagOfDeltaTag(tag: string | undefined): string | undefined {
  if (tag === undefined) return undefined;
  const parts = tag.split(DELTA_TAG_JOIN);
  return parts.length === 2 && parts[0] !== "" && parts[1] !== "" ? parts[0] : undefined;
}
