/**
 * Signatures embedded in oci-delta artifacts, as oci-delta writes and checks
 * them: a cosign signature artifact of the target image (its manifest as a
 * `cosign-signature` entry, its config and simple-signing payloads as
 * `cosign-signature-content` entries), each payload signed with ECDSA P-256 /
 * SHA-256, the base64 DER signature in the payload layer's
 * `dev.cosignproject.cosign/signature` annotation.
 *
 * Verifying: some payload's signature verifies with the given public key (PEM,
 * as `cosign generate-key-pair` writes it), over the payload's exact bytes, and
 * that payload's `critical.image.docker-manifest-digest` is the delta's target
 * manifest digest. Checked with WebCrypto; no cosign needed.
 *
 * @module
 */
import { FormatError, SignatureError } from "../errors.ts";
import { checkJsonCost, type Descriptor, parseManifest } from "../oci/documents.ts";
import type { ImageSource } from "../transport/source.ts";
import type { Digest } from "../util/digest.ts";
import { DeltaAnnotation, DeltaContent } from "./annotations.ts";

/** Annotation of a cosign payload layer holding its base64 signature. */
export const COSIGN_SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature";
/** `critical.type` of a cosign simple-signing payload. */
export const COSIGN_SIGNATURE_TYPE = "cosign container image signature";

/** A cosign signature artifact, read whole (it is small): manifest, config and payload blobs. */
export interface SignatureArtifact {
  manifest: Descriptor;
  manifestBytes: Uint8Array;
  config: Descriptor;
  configBytes: Uint8Array;
  layers: { desc: Descriptor; bytes: Uint8Array }[];
}

/** The `cosign-signature` entries of a delta manifest's layers: each a signature artifact's manifest. */
export function signatureEntries(layers: readonly Descriptor[]): Descriptor[] {
  return layers.filter((l) => l.annotations?.[DeltaAnnotation.content] === DeltaContent.cosignSignature);
}

/**
 * The delta manifest entries that embed `sig`: its manifest (`cosign-signature`),
 * then its config and payloads (`cosign-signature-content`), as oci-delta lists them.
 */
export function signatureLayers(sig: SignatureArtifact): Descriptor[] {
  const entry = (d: Descriptor, content: string): Descriptor => ({
    mediaType: d.mediaType,
    digest: d.digest,
    size: d.size,
    annotations: { [DeltaAnnotation.content]: content },
  });
  return [
    entry(sig.manifest, DeltaContent.cosignSignature),
    entry(sig.config, DeltaContent.cosignSignatureContent),
    ...sig.layers.map((l) => entry(l.desc, DeltaContent.cosignSignatureContent)),
  ];
}

/** The image a simple-signing payload signs (`critical.image.docker-manifest-digest`), or why there is none. */
export function payloadTarget(payload: Uint8Array): string {
  let doc: { critical?: { type?: unknown; image?: { "docker-manifest-digest"?: unknown } } };
  checkJsonCost(payload, "the signature payload");
  try {
    doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(payload));
  } catch {
    throw new FormatError("the signature payload is not JSON");
  }
  if (doc?.critical?.type !== COSIGN_SIGNATURE_TYPE) {
    throw new FormatError(`the signature payload's type is not "${COSIGN_SIGNATURE_TYPE}"`);
  }
  const digest = doc.critical.image?.["docker-manifest-digest"];
  if (typeof digest !== "string") throw new FormatError("the signature payload names no docker-manifest-digest");
  return digest;
}

/** Imports a PEM public key (SPKI, ECDSA P-256, as cosign writes it) for verifying. */
export async function importPublicKey(pem: string, what: string): Promise<CryptoKey> {
  const m = /-----BEGIN PUBLIC KEY-----([A-Za-z0-9+/=\s]+)-----END PUBLIC KEY-----/.exec(pem);
  if (!m) throw new SignatureError(`${what} is not a PEM public key (-----BEGIN PUBLIC KEY-----)`);
  let der: Uint8Array<ArrayBuffer>;
  try {
    der = Uint8Array.from(atob(m[1].replace(/\s+/g, "")), (c) => c.charCodeAt(0));
  } catch {
    throw new SignatureError(`${what} is not a PEM public key (bad base64)`);
  }
  try {
    return await crypto.subtle.importKey("spki", der, { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]);
  } catch {
    throw new SignatureError(`${what} is not an ECDSA P-256 public key`);
  }
}

/** An ASN.1 DER ECDSA signature (SEQUENCE of two INTEGERs) as the 64 bytes r || s WebCrypto takes; undefined if malformed. */
export function derToRaw(der: Uint8Array): Uint8Array<ArrayBuffer> | undefined {
  let p = 0;
  const length = (): number => {
    const b = der[p++];
    if (b < 0x80) return b;
    if (b === 0x81) return der[p++];
    return -1;
  };
  if (der[p++] !== 0x30) return undefined;
  if (length() !== der.length - p) return undefined;
  const out = new Uint8Array(64);
  for (const at of [0, 32]) {
    if (der[p++] !== 0x02) return undefined;
    let n = length();
    if (n < 1 || p + n > der.length) return undefined;
    while (n > 1 && der[p] === 0) (p++, n--);
    if (n > 32) return undefined;
    out.set(der.subarray(p, p + n), at + 32 - n);
    p += n;
  }
  return p === der.length ? out : undefined;
}

/**
 * Checks the signatures a delta embeds (`entries`, its `cosign-signature`
 * entries, fetched from `source`) against `key`: passes when one payload's
 * signature verifies and the payload names `target`; otherwise a
 * SignatureError naming the first reason (no signature, bad signature, another image).
 */
export async function verifyEmbeddedSignature(
  source: ImageSource,
  entries: readonly Descriptor[],
  target: Digest,
  key: CryptoKey,
  what: string,
): Promise<void> {
  if (entries.length === 0) {
    throw new SignatureError(`${what} embeds no signature, and --verify-key requires one`);
  }
  let first: string | undefined;
  for (const entry of entries) {
    const manifest = parseManifest(await source.document(entry), `${what}: signature ${entry.digest}`);
    for (const layer of manifest.layers) {
      const reason = await verifyPayload(source, layer, target, key);
      if (reason === undefined) return;
      first ??= reason;
    }
    first ??= `signature ${entry.digest} has no payload`;
  }
  throw new SignatureError(`${what}: no embedded signature verifies: ${first}`);
}

/** Verifies one payload layer; undefined when it passes, else why not. */
async function verifyPayload(
  source: ImageSource,
  layer: Descriptor,
  target: Digest,
  key: CryptoKey,
): Promise<string | undefined> {
  const b64 = layer.annotations?.[COSIGN_SIGNATURE_ANNOTATION];
  if (b64 === undefined) return `payload ${layer.digest} has no ${COSIGN_SIGNATURE_ANNOTATION} annotation`;
  let raw: Uint8Array<ArrayBuffer> | undefined;
  try {
    raw = derToRaw(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));
  } catch {
    raw = undefined;
  }
  if (!raw) return `the signature of payload ${layer.digest} is not a base64 DER ECDSA signature`;
  const payload = await source.document(layer);
  const ok = await crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, raw, new Uint8Array(payload));
  if (!ok) return `the signature of payload ${layer.digest} does not verify with the key given`;
  let signed: string;
  try {
    signed = payloadTarget(payload);
  } catch (e) {
    return `payload ${layer.digest}: ${(e as Error).message}`;
  }
  if (signed !== target) return `the signature is for manifest ${signed}, but the delta's target is ${target}`;
  return undefined;
}

/** Reads a cosign signature artifact whole from `source` (`resolved`: its manifest), every blob verified. */
export async function readSignatureArtifact(
  source: ImageSource,
  manifest: Descriptor,
  manifestBytes: Uint8Array,
  what: string,
): Promise<SignatureArtifact> {
  const doc = parseManifest(manifestBytes, what);
  const layers = [];
  for (const desc of doc.layers) layers.push({ desc, bytes: await source.document(desc) });
  if (layers.length === 0) throw new FormatError(`${what} holds no signature payload`);
  return { manifest, manifestBytes, config: doc.config, configBytes: await source.document(doc.config), layers };
}
