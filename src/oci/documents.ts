/**
 * OCI and Docker JSON documents (descriptor, manifest, index, image config):
 * types, and parsers that validate the fields deltaship relies on. The raw bytes
 * stay the source of truth; these are read-only views of them.
 *
 * @module
 */
import { FormatError, LimitError } from "../errors.ts";
import { type ConfigDigest, type DiffId, type ManifestDigest, parseDigest } from "../util/digest.ts";
import { escapeBytes } from "../util/text.ts";
import { INDEX_TYPES, layerCompression, MANIFEST_TYPES, MediaType } from "./media_types.ts";

/** An OCI platform. */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** A content descriptor: what a blob is, where to find it, how to check it. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
  artifactType?: string;
  urls?: string[];
}

/** An image manifest (OCI or Docker schema 2), including artifact manifests. */
export interface Manifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  /** The config (for an image, its digest is the image ID). */
  config: Descriptor & { digest: ConfigDigest };
  layers: Descriptor[];
  /** The manifest this one refers to (a delta's target image). */
  subject?: Descriptor & { digest: ManifestDigest };
  annotations?: Record<string, string>;
}

/** An image index (OCI) or manifest list (Docker). */
export interface Index {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

/** The parts of an image config deltaship reads. */
export interface ImageConfig {
  architecture?: string;
  os?: string;
  rootfs: { type: string; diff_ids: DiffId[] };
}

/** The annotation that names a manifest in an OCI layout's index. */
export const REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name";

const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Most bytes of a JSON document deltaship parses (manifest, index, config,
 * layout file). Registries' manifests and indexes are held to 4 MiB before
 * this (`transport/docker/source.ts`).
 */
export const MAX_DOCUMENT = 32 << 20;
/**
 * Most JSON values (objects, arrays, strings, numbers, literals, object keys)
 * a document may hold. What `JSON.parse` allocates grows with this count more
 * than with the bytes: an empty object costs 3 bytes of input and ~90 bytes of
 * heap, a value in objects of new keys up to ~260 (measured, Deno 2.9), so 33 MB
 * of `{},` took 1.2 GB. 100,000 values (at most ~26 MiB) is far beyond any real
 * document: a config with 1,000 history entries holds ~6,000, a manifest of
 * 1,000 annotated layers ~12,000.
 */
export const MAX_JSON_VALUES = 100_000;
/** Deepest nesting of objects and arrays in a document (OCI documents nest 4 or 5 deep). */
export const MAX_JSON_DEPTH = 64;

/**
 * Checks, before anything is allocated for it, that parsing `bytes` stays
 * within {@link MAX_DOCUMENT}, {@link MAX_JSON_VALUES} and
 * {@link MAX_JSON_DEPTH}: one pass over the bytes counting the structural
 * characters outside strings (every value but the first follows a `[`, `{`,
 * `,` or `:`), so the count bounds the values of any valid document. Invalid
 * JSON is left to the parser.
 */
export function checkJsonCost(bytes: Uint8Array, what: string): void {
  if (bytes.length > MAX_DOCUMENT) {
    throw new LimitError(`${what} is ${bytes.length} bytes, more than the ${MAX_DOCUMENT} deltaship parses`);
  }
  let values = 1;
  let depth = 0;
  for (let i = 0; i < bytes.length; i++) {
    switch (bytes[i]) {
      case 0x22: // '"': skip the string, escapes included
        i = stringEnd(bytes, i + 1);
        break;
      case 0x5b: // '['
      case 0x7b: // '{'
        values++;
        if (++depth > MAX_JSON_DEPTH) {
          throw new LimitError(
            `${what} nests objects and arrays more than ${MAX_JSON_DEPTH} deep; deltaship refuses it`,
          );
        }
        break;
      case 0x5d: // ']'
      case 0x7d: // '}'
        depth--;
        break;
      case 0x2c: // ','
      case 0x3a: // ':'
        if (++values > MAX_JSON_VALUES) {
          throw new LimitError(
            `${what} holds more than ${MAX_JSON_VALUES} JSON values (objects, arrays, strings, numbers); ` +
              "deltaship refuses it, since parsing it would take too much memory",
          );
        }
    }
  }
}

/** The index of the quote that closes the string whose content starts at `start` (the length if none does). */
function stringEnd(bytes: Uint8Array, start: number): number {
  for (let from = start;;) {
    const quote = bytes.indexOf(0x22, from);
    if (quote < 0) return bytes.length;
    let backslashes = 0;
    while (quote - backslashes - 1 >= start && bytes[quote - backslashes - 1] === 0x5c) backslashes++;
    if (backslashes % 2 === 0) return quote;
    from = quote + 1;
  }
}

/** Parses JSON bytes, within the bounds of {@link checkJsonCost}; `what` names the document in errors. */
export function parseJson(bytes: Uint8Array, what: string): unknown {
  checkJsonCost(bytes, what);
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    throw new FormatError(`${what} is not valid UTF-8`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new FormatError(`${what} is not valid JSON (${jsonErrorPlace(bytes, text, (e as Error).message)})`);
  }
}

/** Bytes of the input a JSON error shows: enough to recognise it, too few to leak a file. */
const SNIPPET = 40;

/**
 * Where a JSON parse failed, with a short escaped snippet of the input there
 * (the parser's own message quotes the input raw, controls and all).
 */
function jsonErrorPlace(bytes: Uint8Array, text: string, message: string): string {
  if (bytes.length === 0) return "the document is empty";
  const at = /at position (\d+)/.exec(message);
  const start = at ? new TextEncoder().encode(text.slice(0, Number(at[1]))).length : 0;
  const end = Math.min(bytes.length, start + SNIPPET);
  const snippet = `"${escapeBytes(bytes.subarray(start, end))}"${end < bytes.length ? "..." : ""}`;
  if (/Unexpected end of JSON input/.test(message)) return `it ends too soon, after ${bytes.length} bytes`;
  return at ? `at byte ${start}: ${snippet}` : `it starts with ${snippet}`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Validates one descriptor object. */
export function checkDescriptor(v: unknown, what: string): Descriptor {
  if (!isObject(v)) throw new FormatError(`${what} is not a descriptor object`);
  if (typeof v.mediaType !== "string" || v.mediaType === "") {
    throw new FormatError(`${what} has no mediaType`);
  }
  if (typeof v.digest !== "string") throw new FormatError(`${what} has no digest`);
  parseDigest(v.digest, `${what} digest`);
  if (typeof v.size !== "number" || !Number.isSafeInteger(v.size) || v.size < 0) {
    throw new FormatError(`${what} (${v.digest}) has an invalid size`);
  }
  if (v.annotations !== undefined && !isStringMap(v.annotations)) {
    throw new FormatError(`${what} (${v.digest}) has invalid annotations (they must map strings to strings)`);
  }
  return v as unknown as Descriptor;
}

/** What kind of document some manifest bytes are. */
export type DocumentKind = "manifest" | "index";

/**
 * Decides whether a document is a manifest or an index, from its own `mediaType`
 * (or, when that is absent, from the descriptor's, or from its shape).
 */
export function documentKind(doc: Record<string, unknown>, descriptorType?: string): DocumentKind {
  const mt = typeof doc.mediaType === "string" ? doc.mediaType : descriptorType;
  if (mt && INDEX_TYPES.includes(mt)) return "index";
  if (mt && MANIFEST_TYPES.includes(mt)) return "manifest";
  if (mt) throw new FormatError(`unsupported manifest media type ${JSON.stringify(mt)}`);
  if (Array.isArray(doc.manifests)) return "index";
  return "manifest";
}

/** Parses and validates an image manifest. */
export function parseManifest(bytes: Uint8Array, what: string): Manifest {
  const v = parseJson(bytes, what);
  if (!isObject(v)) throw new FormatError(`${what} is not a JSON object`);
  if (v.schemaVersion !== 2) throw new FormatError(`${what} has schemaVersion ${v.schemaVersion}, expected 2`);
  if (v.mediaType !== undefined && !MANIFEST_TYPES.includes(v.mediaType as string)) {
    throw new FormatError(`${what} has media type ${JSON.stringify(v.mediaType)}, not an image manifest`);
  }
  checkDescriptor(v.config, `${what} config`);
  if (!Array.isArray(v.layers)) throw new FormatError(`${what} has no layers list`);
  v.layers.forEach((l, i) => checkDescriptor(l, `${what} layer ${i}`));
  if (v.subject !== undefined) checkDescriptor(v.subject, `${what} subject`);
  if (v.annotations !== undefined && !isStringMap(v.annotations)) {
    throw new FormatError(`${what} has invalid annotations (they must map strings to strings)`);
  }
  return v as unknown as Manifest;
}

/** Parses and validates an image index or Docker manifest list. */
export function parseIndex(bytes: Uint8Array, what: string): Index {
  const v = parseJson(bytes, what);
  if (!isObject(v)) throw new FormatError(`${what} is not a JSON object`);
  if (v.schemaVersion !== 2) throw new FormatError(`${what} has schemaVersion ${v.schemaVersion}, expected 2`);
  if (!Array.isArray(v.manifests)) throw new FormatError(`${what} has no manifests list`);
  v.manifests.forEach((m, i) => checkDescriptor(m, `${what} entry ${i}`));
  return v as unknown as Index;
}

/** Parses and validates an image config far enough to trust its diff_ids. */
export function parseImageConfig(bytes: Uint8Array, what: string): ImageConfig {
  const v = parseJson(bytes, what);
  if (!isObject(v)) throw new FormatError(`${what} is not a JSON object`);
  const rootfs = v.rootfs;
  if (!isObject(rootfs) || !Array.isArray(rootfs.diff_ids)) {
    throw new FormatError(`${what} has no rootfs.diff_ids`);
  }
  if (rootfs.type !== "layers") {
    throw new FormatError(`${what} has rootfs.type ${JSON.stringify(rootfs.type)}, expected "layers"`);
  }
  rootfs.diff_ids.forEach((d, i) => {
    if (typeof d !== "string") throw new FormatError(`${what} diff_id ${i} is not a string`);
    parseDigest(d, `${what} diff_id ${i}`);
  });
  // Only what is read is kept: the rest of the parsed document can be collected at once.
  const config: ImageConfig = { rootfs: { type: rootfs.type, diff_ids: rootfs.diff_ids as DiffId[] } };
  if (typeof v.architecture === "string") config.architecture = v.architecture;
  if (typeof v.os === "string") config.os = v.os;
  return config;
}

/** Encodes a document as JSON bytes (compact, as deltaship writes new documents). */
export function encodeJson(doc: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(doc));
}

/** The empty JSON blob `{}` that artifacts use as their config. */
export const EMPTY_CONFIG: Descriptor = {
  mediaType: MediaType.ociEmpty,
  digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
  size: 2,
};

/** Checks that every layer of an image has a diff_id and a media type deltaship can import. */
export function checkImageLayers(manifest: Manifest, config: ImageConfig, what: string): void {
  const n = manifest.layers.length;
  const d = config.rootfs.diff_ids.length;
  if (n !== d) {
    throw new FormatError(`${what}: manifest has ${n} layers but the config lists ${d} diff_ids`);
  }
  for (const layer of manifest.layers) layerCompression(layer.mediaType, layer.digest);
}

/** True for an object whose values are all strings (what OCI annotations are). */
function isStringMap(v: unknown): v is Record<string, string> {
  return isObject(v) && Object.values(v).every((x) => typeof x === "string");
}
