/**
 * Test helper: a hostile registry front, built on the fault proxy, in front of
 * a real registry. It answers the referrers API with pages the test builds
 * (any bytes, any `Link` header, after any delay), serves manifests of its own
 * by digest (lying deltas, candidates that drip), and rewrites the `Location`
 * of upload answers: the shapes of the attacks in issue 20. Everything else
 * goes to the registry as it is. Also here: builders of hostile listings.
 */
import { buildDeltaManifest } from "../../src/delta/artifact.ts";
import { DELTA_ARTIFACT_TYPE, DeltaAnnotation } from "../../src/delta/annotations.ts";
import { TARDIFF_MEDIA_TYPE } from "../../src/tardiff/format.ts";
import { sha256 } from "../../src/util/digest.ts";
import { runCli } from "./cli.ts";
import { type FaultProxy, startProxy } from "./fault_proxy.ts";
import { sampleTar, writeImage, type WrittenImage } from "./oci.ts";
import { pushImage, type Registry, startRegistry } from "./registry.ts";

export const INDEX_TYPE = "application/vnd.oci.image.index.v1+json";
const MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json";

/** One answer to a referrers request. */
export interface ListingAnswer {
  body: Uint8Array | string;
  /** The `Link` header, e.g. `<file:///etc/passwd>; rel="next"`. */
  link?: string;
}

/** What the front does besides forwarding. */
export interface FrontRules {
  /**
   * The answer to the `n`th referrers request (0-based, counted over the
   * front's life); undefined forwards it (distribution 2.8 answers 404).
   */
  listing?(n: number, url: URL): ListingAnswer | undefined;
  /** Manifests served by digest (`GET /v2/NAME/manifests/DIGEST`) instead of the registry's. */
  documents?: Map<string, Uint8Array>;
  /** Milliseconds to wait before answering a referrers request or one of `documents`. */
  delayMs?: number;
  /** The Location to send instead of the registry's on upload answers (`POST`/`PATCH …/blobs/uploads/…`). */
  location?(original: string): string;
}

/** A running front. */
export interface HostileFront extends FaultProxy {
  /** Referrers requests answered so far. */
  listings(): number;
  /** GETs of `documents` answered so far. */
  documentsServed(): number;
}

/** Starts the front before the registry at `target` (`http://HOST:PORT`). */
export function startHostileFront(target: string, rules: FrontRules): HostileFront {
  let listings = 0;
  let served = 0;
  const wait = (signal: AbortSignal) =>
    new Promise<void>((resolve) => {
      if (!rules.delayMs) return resolve();
      const t = setTimeout(resolve, rules.delayMs);
      signal.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
    });
  const proxy = startProxy(target, async (req, { path, forward, signal }) => {
    if (req.method === "GET" && /^\/v2\/.+\/referrers\/sha256:[0-9a-f]{64}$/.test(path) && rules.listing) {
      const answer = rules.listing(listings, new URL(req.url));
      if (answer) {
        listings++;
        await wait(signal);
        const headers = new Headers({ "content-type": INDEX_TYPE });
        if (answer.link !== undefined) headers.set("link", answer.link);
        return new Response(answer.body as BodyInit, { headers });
      }
    }
    const doc = /^\/v2\/.+\/manifests\/(sha256:[0-9a-f]{64})$/.exec(path);
    const own = doc && req.method !== "PUT" ? rules.documents?.get(doc[1]) : undefined;
    if (own) {
      served++;
      await wait(signal);
      const headers = { "content-type": MANIFEST_TYPE, "docker-content-digest": doc![1] };
      return new Response(req.method === "HEAD" ? null : own as Uint8Array<ArrayBuffer>, { headers });
    }
    const res = await forward();
    const location = res.headers.get("location");
    if (rules.location && location !== null && /\/blobs\/uploads\//.test(path)) {
      const headers = new Headers(res.headers);
      headers.set("location", rules.location(location));
      return new Response(res.body, { status: res.status, statusText: res.statusText, headers });
    }
    return res;
  });
  return { ...proxy, listings: () => listings, documentsServed: () => served };
}

/** An OCI image index listing `manifests`, with `extra` top-level fields. */
export function indexBytes(manifests: unknown[], extra: Record<string, unknown> = {}): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(JSON.stringify({ schemaVersion: 2, mediaType: INDEX_TYPE, manifests, ...extra }));
}

/**
 * An index of about `bytes` bytes that lists nothing and carries an array of
 * empty objects: the cheapest bytes-to-objects ratio JSON has (issue 20: 4 MB
 * of them cost a parse 390 MB).
 */
export function emptyObjectsIndex(bytes: number): Uint8Array<ArrayBuffer> {
  const head = `{"schemaVersion":2,"mediaType":"${INDEX_TYPE}","manifests":[],"x":[`;
  const n = Math.max(1, Math.floor((bytes - head.length - 2) / 3));
  return new TextEncoder().encode(`${head}${"{},".repeat(n - 1)}{}]}`);
}

/** A listing entry for a delta manifest (its own bytes, or a made-up digest), claiming `sourceConfig`. */
export function deltaEntry(
  manifest: Uint8Array | string,
  sourceConfig: string,
  annotations: Record<string, string> = {},
): Record<string, unknown> {
  const digest = typeof manifest === "string" ? manifest : sha256(manifest);
  return {
    mediaType: MANIFEST_TYPE,
    digest,
    size: typeof manifest === "string" ? 1000 : manifest.length,
    artifactType: DELTA_ARTIFACT_TYPE,
    annotations: { [DeltaAnnotation.sourceConfig]: sourceConfig, ...annotations },
  };
}

/** `n` annotation keys (with empty values), for an entry that costs a parser many objects per byte. */
export function manyAnnotations(n: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < n; i++) out[`k${i}`] = "";
  return out;
}

/**
 * The manifest of a delta from `sourceConfig` to `target` that ships a
 * tar-diff of `size` bytes (digest `digest`, made up unless given) for each of
 * the target's layers: well-formed, whatever its blobs are.
 */
export function deltaManifestTo(
  target: WrittenImage,
  sourceConfig: string,
  tarDiff: { size: number; digest?: string; salt?: string },
): Uint8Array {
  return buildDeltaManifest({
    target: { mediaType: target.mediaType, digest: target.manifest, size: target.manifestSize },
    targetConfig: {
      mediaType: "application/vnd.oci.image.config.v1+json",
      digest: target.config,
      size: target.configBytes.length,
    },
    source: sha256(`source of ${sourceConfig}`),
    sourceConfig,
    reused: [],
    layers: target.layers.map((l, i) => ({
      mediaType: TARDIFF_MEDIA_TYPE,
      digest: tarDiff.digest ?? sha256(`tar-diff ${i} ${tarDiff.salt ?? ""}`),
      size: tarDiff.size,
      to: l.digest,
    })),
  });
}

/** A registry holding `app:v1` and `app:v2` (v2 adds a layer to v1's), and a repository holding v1. */
export interface TwoVersions {
  reg: Registry;
  v1: WrittenImage;
  v2: WrittenImage;
  /** Holds v1, so a pull of v2 looks for deltas. */
  repo: string;
}

/** Starts a registry under `dir` with v1 and v2 pushed, and pulls v1 into `dir/repo` (HOME is `dir`). */
export async function twoVersions(dir: string): Promise<TwoVersions> {
  const reg = await startRegistry();
  const v1 = await writeImage(`${dir}/layout`, { tag: "v1", layers: [{ tar: sampleTar("base") }] });
  const v2 = await writeImage(`${dir}/layout`, {
    tag: "v2",
    layers: [{ tar: sampleTar("base") }, { tar: sampleTar("next") }],
  });
  await pushImage(`oci:${dir}/layout:v1`, `docker://${reg.host}/app:v1`);
  await pushImage(`oci:${dir}/layout:v2`, `docker://${reg.host}/app:v2`);
  const repo = `${dir}/repo`;
  const r = await runCli(["--repo", repo, "pull", `docker://${reg.host}/app:v1`], { HOME: dir });
  if (r.code !== 0) throw new Error(`pull v1: ${r.stderr}`);
  return { reg, v1, v2, repo };
}
