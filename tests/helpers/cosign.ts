/**
 * Test helper: cosign-style signatures made with the real `openssl`: ECDSA
 * P-256 key pairs (PEM, as `cosign generate-key-pair` writes the public key),
 * simple-signing payloads, and signature artifacts written into OCI layouts
 * the way cosign stores them (a manifest whose one layer is the payload, its
 * base64 DER signature in the `dev.cosignproject.cosign/signature` annotation).
 */
import { run } from "./interop.ts";
import { addIndexEntry, putBlob } from "./oci.ts";
import { sha256 } from "../../src/util/digest.ts";

const enc = new TextEncoder();

/** A key pair in `dir`: the private key and its PEM public key's paths. */
export async function keyPair(dir: string, name: string): Promise<{ key: string; pub: string }> {
  await Deno.mkdir(dir, { recursive: true });
  const key = `${dir}/${name}.key`, pub = `${dir}/${name}.pub`;
  await run("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key);
  await run("openssl", "ec", "-in", key, "-pubout", "-out", pub);
  return { key, pub };
}

/** The simple-signing payload cosign signs for image `digest`. */
export function payloadFor(digest: string, reference = "registry.example/app"): Uint8Array {
  return enc.encode(JSON.stringify({
    critical: {
      identity: { "docker-reference": reference },
      image: { "docker-manifest-digest": digest },
      type: "cosign container image signature",
    },
    optional: null,
  }));
}

/** `openssl dgst -sha256 -sign KEY` of `bytes`: a DER ECDSA signature, base64. */
export async function sign(key: string, bytes: Uint8Array): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "cosign-" });
  try {
    await Deno.writeFile(`${dir}/payload`, bytes);
    await run("openssl", "dgst", "-sha256", "-sign", key, "-out", `${dir}/sig`, `${dir}/payload`);
    const der = await Deno.readFile(`${dir}/sig`);
    return btoa(String.fromCharCode(...der));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** What {@link writeSignature} wrote: the artifact's manifest digest and its blobs' descriptors. */
export interface WrittenSignature {
  manifest: string;
  manifestSize: number;
  config: { digest: string; size: number };
  payload: { digest: string; size: number; annotations: Record<string, string> };
}

/**
 * Writes a cosign signature artifact into the layout `dir`: `payload` (default:
 * the payload for `target`) signed with `key`; `signed` replaces the bytes the
 * signature is made over (to make a tampered artifact).
 */
export async function writeSignature(
  dir: string,
  key: string,
  target: string,
  options: { payload?: Uint8Array; signed?: Uint8Array } = {},
): Promise<WrittenSignature> {
  const payload = options.payload ?? payloadFor(target);
  const signature = await sign(key, options.signed ?? payload);
  const payloadDigest = await putBlob(dir, payload);
  const config = enc.encode(JSON.stringify({
    architecture: "",
    os: "",
    config: {},
    rootfs: { type: "layers", diff_ids: [sha256(payload)] },
  }));
  const configDigest = await putBlob(dir, config);
  const annotations = { "dev.cosignproject.cosign/signature": signature };
  const manifest = enc.encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: configDigest, size: config.length },
    layers: [{
      mediaType: "application/vnd.dev.cosign.simplesigning.v1+json",
      digest: payloadDigest,
      size: payload.length,
      annotations,
    }],
  }));
  const digest = await putBlob(dir, manifest);
  await addIndexEntry(dir, { mediaType: "application/vnd.oci.image.manifest.v1+json", digest, size: manifest.length });
  return {
    manifest: digest,
    manifestSize: manifest.length,
    config: { digest: configDigest, size: config.length },
    payload: { digest: payloadDigest, size: payload.length, annotations },
  };
}
