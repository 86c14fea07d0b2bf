/**
 * Reading oci-delta artifacts: the delta manifest's entries by their
 * `delta.content` annotation (unknown kinds ignored), its annotations checked,
 * and the embedded target manifest and config fetched and checked against the
 * digests that name them.
 *
 * @module
 */
import { FormatError } from "../errors.ts";
import {
  type Descriptor,
  EMPTY_CONFIG,
  encodeJson,
  type ImageConfig,
  type Manifest,
  parseImageConfig,
  parseManifest,
} from "../oci/documents.ts";
import { MediaType } from "../oci/media_types.ts";
import type { ImageSource } from "../transport/source.ts";
import {
  asConfigDigest,
  asManifestDigest,
  type ConfigDigest,
  type DiffId,
  type Digest,
  type ManifestDigest,
  parseDigest,
} from "../util/digest.ts";
import { DELTA_ARTIFACT_TYPE, DeltaAnnotation, DeltaContent } from "./annotations.ts";
import { signatureEntries } from "./signature.ts";

/** What a delta manifest says. */
export interface DeltaArtifact {
  /** Digest of the delta manifest itself. */
  digest: ManifestDigest;
  /** Digest of the target image manifest (`delta.target`). */
  target: ManifestDigest;
  /** Digest of the source image manifest (`delta.source`), when given. */
  source?: ManifestDigest;
  /** Digest of the source image config (`delta.source-config`): how the source is found. */
  sourceConfig: ConfigDigest;
  /** The embedded target manifest. */
  manifest: Descriptor;
  /** The embedded target config. */
  config: Descriptor;
  /** Shipped target layers (tar-diff or original blob), by target layer digest (`delta.to`). */
  layers: Map<Digest, Descriptor>;
  /** Embedded cosign signature artifacts' manifests (`cosign-signature` entries); empty when unsigned. */
  signatures: Descriptor[];
}

/** True when a manifest is an oci-delta artifact. */
export function isDeltaManifest(manifest: Manifest): boolean {
  return manifest.artifactType === DELTA_ARTIFACT_TYPE;
}

function annotation(manifest: Manifest, key: string, what: string, required: true): Digest;
function annotation(manifest: Manifest, key: string, what: string, required: false): Digest | undefined;
function annotation(manifest: Manifest, key: string, what: string, required: boolean): Digest | undefined {
  const v = manifest.annotations?.[key];
  if (v === undefined) {
    if (required) throw new FormatError(`${what} has no ${key} annotation`);
    return undefined;
  }
  parseDigest(v, `${what} annotation ${key}`);
  return v;
}

/** Reads a delta manifest; `digest` is its own digest, `what` names it in errors. */
export function parseDeltaArtifact(manifest: Manifest, digest: ManifestDigest, what: string): DeltaArtifact {
  if (!isDeltaManifest(manifest)) throw new FormatError(`${what} is not an oci-delta artifact`);
  const target = asManifestDigest(annotation(manifest, DeltaAnnotation.target, what, true));
  const sourceConfig = asConfigDigest(annotation(manifest, DeltaAnnotation.sourceConfig, what, true));
  const sourceAnnotation = annotation(manifest, DeltaAnnotation.source, what, false);
  const source = sourceAnnotation === undefined ? undefined : asManifestDigest(sourceAnnotation);
  let embeddedManifest: Descriptor | undefined;
  let embeddedConfig: Descriptor | undefined;
  const layers = new Map<Digest, Descriptor>();
  for (const [i, desc] of manifest.layers.entries()) {
    const content = desc.annotations?.[DeltaAnnotation.content];
    switch (content) {
      case DeltaContent.imageManifest:
        if (embeddedManifest) throw new FormatError(`${what} embeds more than one target manifest`);
        embeddedManifest = desc;
        break;
      case DeltaContent.imageConfig:
        if (embeddedConfig) throw new FormatError(`${what} embeds more than one target config`);
        embeddedConfig = desc;
        break;
      case DeltaContent.imageLayer: {
        const to = desc.annotations?.[DeltaAnnotation.to];
        if (to === undefined) {
          throw new FormatError(`${what}: layer entry ${i} (${desc.digest}) has no ${DeltaAnnotation.to} annotation`);
        }
        parseDigest(to, `${what}: layer entry ${i} annotation ${DeltaAnnotation.to}`);
        if (layers.has(to)) throw new FormatError(`${what} ships target layer ${to} twice`);
        layers.set(to, desc);
        break;
      }
      default:
        break; // signatures (see `signatures`), and kinds this version does not know: not needed to apply
    }
  }
  if (!embeddedManifest) throw new FormatError(`${what} embeds no target manifest`);
  if (!embeddedConfig) throw new FormatError(`${what} embeds no target config`);
  if (embeddedManifest.digest !== target) {
    throw new FormatError(
      `${what}: its embedded manifest is ${embeddedManifest.digest}, but ${DeltaAnnotation.target} says ${target}`,
    );
  }
  return {
    digest,
    target,
    source,
    sourceConfig,
    manifest: embeddedManifest,
    config: embeddedConfig,
    layers,
    signatures: signatureEntries(manifest.layers),
  };
}

/** The target image a delta builds: exact manifest and config bytes, parsed. */
export interface DeltaTarget {
  manifestBytes: Uint8Array;
  manifest: Manifest;
  /** The manifest's media type. */
  mediaType: string;
  configBytes: Uint8Array;
  config: ImageConfig;
}

/**
 * Fetches the embedded target manifest and config (each verified against its
 * descriptor) and checks that the config is the one the manifest names.
 */
export async function fetchDeltaTarget(
  source: ImageSource,
  artifact: DeltaArtifact,
  what: string,
): Promise<DeltaTarget> {
  const manifestBytes = await source.document(artifact.manifest);
  const manifest = parseManifest(manifestBytes, `${what}: target manifest ${artifact.target}`);
  if (manifest.config.digest !== artifact.config.digest) {
    throw new FormatError(
      `${what}: its embedded config is ${artifact.config.digest}, but the target manifest names ${manifest.config.digest}`,
    );
  }
  const configBytes = await source.document(manifest.config);
  const config = parseImageConfig(configBytes, `${what}: target config ${manifest.config.digest}`);
  const mediaType = manifest.mediaType ?? artifact.manifest.mediaType ?? MediaType.ociManifest;
  return { manifestBytes, manifest, mediaType, configBytes, config };
}

/** One shipped target layer of a delta being built: the blob carried, and the target layer it makes. */
export interface ShippedLayer {
  /** The blob's media type: a tar-diff, or the original layer's own type. */
  mediaType: string;
  digest: Digest;
  size: number;
  /** The target layer's blob digest (as the target manifest lists it). */
  to: Digest;
}

/** What a delta manifest says, for {@link buildDeltaManifest}. */
export interface DeltaManifestSpec {
  /** The target image manifest (digest, size, media type). */
  target: Descriptor;
  /** The target config (its descriptor as the target manifest has it). */
  targetConfig: Descriptor;
  /** Source image manifest and config digests. */
  source: Digest;
  sourceConfig: Digest;
  /** Target layers the client must already hold: blob digests and diff_ids, same order. */
  reused: { digest: Digest; diffId: DiffId }[];
  /** Every shipped layer, in target order. */
  layers: ShippedLayer[];
  /** Entries listed after the layers as they are (embedded signatures: see `signatureLayers`). */
  extra?: Descriptor[];
}

/** The empty config's bytes (`{}`), a blob of every delta. */
export const EMPTY_CONFIG_BYTES: Uint8Array = new TextEncoder().encode("{}");

/**
 * Builds the bytes of a delta manifest in the shape oci-delta writes (and
 * {@link parseDeltaArtifact} reads): artifact type, empty config, the embedded
 * target manifest and config, the shipped layers, the target as `subject`, and
 * the source/target annotations.
 */
export function buildDeltaManifest(spec: DeltaManifestSpec): Uint8Array {
  const annotations: Record<string, string> = {
    [DeltaAnnotation.target]: spec.target.digest,
    [DeltaAnnotation.source]: spec.source,
    [DeltaAnnotation.sourceConfig]: spec.sourceConfig,
  };
  if (spec.reused.length) {
    annotations[DeltaAnnotation.reused] = JSON.stringify(spec.reused.map((r) => r.digest));
    annotations[DeltaAnnotation.reusedDiffId] = JSON.stringify(spec.reused.map((r) => r.diffId));
  }
  const target = { mediaType: spec.target.mediaType, digest: spec.target.digest, size: spec.target.size };
  return encodeJson({
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    artifactType: DELTA_ARTIFACT_TYPE,
    config: { mediaType: EMPTY_CONFIG.mediaType, digest: EMPTY_CONFIG.digest, size: EMPTY_CONFIG.size },
    layers: [
      { ...target, annotations: { [DeltaAnnotation.content]: DeltaContent.imageManifest } },
      {
        mediaType: spec.targetConfig.mediaType,
        digest: spec.targetConfig.digest,
        size: spec.targetConfig.size,
        annotations: { [DeltaAnnotation.content]: DeltaContent.imageConfig },
      },
      ...spec.layers.map((l) => ({
        mediaType: l.mediaType,
        digest: l.digest,
        size: l.size,
        annotations: { [DeltaAnnotation.content]: DeltaContent.imageLayer, [DeltaAnnotation.to]: l.to },
      })),
      ...(spec.extra ?? []),
    ],
    subject: target,
    annotations,
  });
}
