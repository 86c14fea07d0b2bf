/**
 * The transport interface: where images come from. A source yields the manifest
 * its reference names, small documents by descriptor, and blob streams; the
 * repository neither knows nor cares where the bytes came from. Also here: the
 * walk from a reference to one platform's manifest, shared by every transport.
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
  type Platform,
} from "../oci/documents.ts";
import { MediaType } from "../oci/media_types.ts";
import { checkImagePlatform, configPlatform, selectPlatform } from "../oci/platform.ts";
import type { ByteRange, RangePiece, RangePolicy, RangeStats } from "./docker/byte_ranges.ts";
import { asManifestDigest, type Digest, type ManifestDigest, sha256, verifyBytes } from "../util/digest.ts";

/** A document fetched by reference: exact bytes and their digest. */
export interface FetchedDocument {
  bytes: Uint8Array;
  digest: Digest;
  /** Media type the transport reported (index entry, Content-Type), if any. */
  mediaType?: string;
}

/** A place to pull images (or deltas) from. */
export interface ImageSource {
  /** The source as the user wrote it, for messages. */
  readonly description: string;
  /** The reference's tag, when it has one (the default image name). */
  readonly tag?: string;
  /** The manifest or index the reference names, verified when named by digest. */
  root(): Promise<FetchedDocument>;
  /** A manifest, index or config by descriptor; verified against it. `signal` stops the fetch (network sources). */
  document(desc: Descriptor, signal?: AbortSignal): Promise<Uint8Array>;
  /** A blob's bytes as a stream; the consumer verifies them. */
  blob(desc: Descriptor): Promise<ReadableStream<Uint8Array>>;
  /**
   * For registries: the bytes of `ranges` of a blob (sorted, apart), in order,
   * nothing else (a `RangeUnsupportedError` when the server ignores
   * `Range`; the consumer verifies what it gets).
   */
  blobRanges?(desc: Descriptor, ranges: readonly ByteRange[], stats?: RangeStats): AsyncGenerator<RangePiece>;
  /** For registries: how {@link blobRanges} merges ranges (what a plan of ranges costs). */
  readonly rangePolicy?: RangePolicy;
  /** Releases connections and files. */
  close(): Promise<void>;
  /** For network sources: blob downloads in flight when the user did not choose a number. */
  defaultMaxDownloads?(n: number): void;
  /** For network sources: the longest one document (manifest, config, listing page) may take, retries included. */
  readonly documentDeadlineMs?: number;
  /**
   * For registries, once the manifest was fetched: the reference that served
   * it (`HOST/REPO[:TAG][@DIGEST]`), which may be a mirror or another location
   * (registries.conf; `asNamed` false); blobs and delta lookups go there too.
   */
  readonly servedBy?: { reference: string; mirror: boolean; asNamed: boolean };
  /**
   * For registries: the manifests of type `artifactType` whose subject is the
   * manifest `subject` (how published deltas are found).
   */
  referrers?(subject: Digest, artifactType: string, options?: ReferrerOptions): Promise<ReferrerList>;
}

/** How to list referrers. */
export interface ReferrerOptions {
  /** Annotation keys kept on each listed descriptor (all others are dropped as the listing is read). */
  annotations?: readonly string[];
  /** Stops the listing (a deadline over more than one request). */
  signal?: AbortSignal;
}

/** The referrers of a subject, and how they were found. */
export interface ReferrerList {
  /**
   * Descriptors of the referring manifests: mediaType, digest, size,
   * artifactType and the annotations asked for, as listed.
   */
  descriptors: Descriptor[];
  /** `api`: the referrers API answered; `tag`: the fallback tag; `none`: neither lists any. */
  via: "api" | "tag" | "none";
  /** Why the listing was cut short (too many pages, bytes or entries), when it was: `descriptors` is a prefix. */
  truncated?: string;
}

/** Options shared by every source. */
export interface SourceOptions {
  /** The platform to pick from an index. */
  platform: Platform;
}

/** A manifest reached from a reference, with its exact bytes. */
export interface ResolvedManifest {
  bytes: Uint8Array;
  digest: ManifestDigest;
  manifest: Manifest;
  /** Media type of the manifest (its own field, else the transport's). */
  mediaType: string;
}

/** Largest chain of nested indexes followed. */
const MAX_DEPTH = 4;

/** How {@link resolveManifest} treats the platform. */
export interface ResolveOptions {
  /**
   * The platform was asked for (--platform), not the host's by default: an
   * image reached without an index must be for it too (its config is read).
   */
  requirePlatform?: boolean;
}

/**
 * Follows the source's reference (through indexes, choosing `platform`) to one
 * manifest. An index without an entry for `platform` fails naming those it
 * has; with `requirePlatform`, so does a single image whose config names
 * another platform.
 */
export async function resolveManifest(
  source: ImageSource,
  platform: Platform,
  options: ResolveOptions = {},
): Promise<ResolvedManifest> {
  let doc = await source.root();
  let what = source.description;
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    const raw = parseJson(doc.bytes, `${what} manifest`);
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
      throw new FormatError(`${what} manifest is not a JSON object`);
    }
    const kind = documentKind(raw as Record<string, unknown>, doc.mediaType);
    if (kind === "manifest") {
      const manifest = parseManifest(doc.bytes, `${what} manifest ${doc.digest}`);
      const imageConfig = manifest.config.mediaType === MediaType.ociConfig ||
        manifest.config.mediaType === MediaType.dockerConfig;
      if (depth === 0 && options.requirePlatform && imageConfig) {
        const config = parseJson(await source.document(manifest.config), `${what} config ${manifest.config.digest}`);
        checkImagePlatform(configPlatform(config), platform, `${what} (${doc.digest})`);
      }
      return {
        bytes: doc.bytes,
        digest: asManifestDigest(doc.digest),
        manifest,
        mediaType: manifest.mediaType ?? doc.mediaType ?? "application/vnd.oci.image.manifest.v1+json",
      };
    }
    const index = parseIndex(doc.bytes, `${what} index ${doc.digest}`);
    const entry = selectPlatform(index, platform, `${what} (index ${doc.digest})`);
    const bytes = await source.document(entry);
    doc = { bytes, digest: entry.digest, mediaType: entry.mediaType };
    what = `${source.description} (${entry.digest})`;
  }
  throw new FormatError(`${source.description}: indexes nested deeper than ${MAX_DEPTH}`);
}

/** Checks fetched document bytes against a descriptor. */
export function checkDocument(what: string, bytes: Uint8Array, desc: Descriptor): Uint8Array {
  verifyBytes(what, bytes, desc.digest, desc.size);
  return bytes;
}

/** The digest of a document fetched without one to check against. */
export function digestOf(bytes: Uint8Array): Digest {
  return sha256(bytes);
}
