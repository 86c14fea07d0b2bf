/**
 * Referrers: the manifests whose `subject` is a given manifest (a delta's
 * subject is its target image). Listed by the referrers API
 * (`GET /v2/REPO/referrers/DIGEST?artifactType=…`, an image index), or, on a
 * registry without it (404), by the distribution spec's fallback: the image
 * index tagged `<alg>-<hex>` after the subject's digest, which clients that
 * push referrers keep up to date themselves.
 *
 * @module
 */
import { FormatError } from "../../errors.ts";
import { type Descriptor, encodeJson, parseIndex, parseJson } from "../../oci/documents.ts";
import { MediaType } from "../../oci/media_types.ts";
import { type Digest, parseDigest } from "../../util/digest.ts";
import type { ReferrerList } from "../source.ts";
import type { Fetched, RegistryClient } from "./client.ts";
import type { RegistryFacts } from "./registry_facts.ts";
import { type RegistryUrl, registryUrl } from "./registry_url.ts";
import { withDeadline } from "./retry.ts";

/** How to reach one repository. */
export interface RepositoryAccess {
  client: RegistryClient;
  repository: string;
  /** Authorization scope (`repository:REPO:pull`, or `:pull,push` to write). */
  scope: string;
  /** Longest a document may take. */
  deadlineMs: number;
  /** What is remembered of the registry (whether it lacks the referrers API), keyed by `registry`. */
  facts?: { store: RegistryFacts; registry: string };
}

/** Largest index accepted. */
const INDEX_LIMIT = 4 << 20;
/** Pages of a referrers answer followed (`Link: <…>; rel="next"`). */
const MAX_PAGES = 8;
/** Tries of a fallback-index update that lost a race with another writer. */
const UPDATE_TRIES = 3;

/** The fallback tag of `subject`: `sha256-<hex>` (at most 128 characters). */
export function fallbackTag(subject: Digest): string {
  const { algorithm, hex } = parseDigest(subject);
  return `${algorithm}-${hex}`.slice(0, 128);
}

/**
 * The referrers of `subject` of type `artifactType` in the repository: from the
 * referrers API, else from the fallback tag. The type is filtered here too
 * (a registry need not apply the filter). A registry remembered to lack the API
 * is asked for the fallback tag only (one request, not two); one found to lack
 * it is remembered so.
 */
export async function listReferrers(
  access: RepositoryAccess,
  subject: Digest,
  artifactType: string,
  what: string,
): Promise<ReferrerList> {
  const pick = (list: Descriptor[]) => list.filter((d) => d.artifactType === artifactType);
  const fromTag = async (): Promise<ReferrerList> => {
    const tagged = await getIndex(access, tagPath(access, subject), `${what}: referrers tag of ${subject}`, [404]);
    return tagged === undefined
      ? { descriptors: [], via: "none" }
      : { descriptors: pick(tagged.index.manifests), via: "tag" };
  };
  const { facts } = access;
  if (facts && await facts.store.lacksReferrersApi(facts.registry)) return await fromTag();
  let next: string | RegistryUrl | undefined = `/v2/${access.repository}/referrers/${subject}?${new URLSearchParams({
    artifactType,
  })}`;
  const found: Descriptor[] = [];
  const label = `${what}: referrers of ${subject}`;
  for (let page = 0; next !== undefined && page < MAX_PAGES; page++) {
    const answer = await getIndex(access, next, label, [400, 404, 405, 406, 501]);
    if (answer === undefined) {
      if (page > 0) break;
      await facts?.store.recordNoReferrersApi(facts.registry);
      return await fromTag();
    }
    found.push(...pick(answer.index.manifests));
    const link = nextPage(answer.link);
    next = link === undefined
      ? undefined
      : registryUrl(link, { kind: "next-page Link", base: answer.url, origin: access.client.origin }, label);
  }
  return { descriptors: found, via: "api" };
}

/**
 * Adds `entry` (a manifest whose subject is `subject`, with its artifactType and
 * annotations) to the fallback index of `subject`, keeping every entry already
 * there. The update is conditional on the index not having changed (`If-Match`)
 * where the registry supports that, and checked by reading it back, so an entry
 * lost to a concurrent writer is added again. Returns false when it was there already.
 */
export async function addToFallbackIndex(
  access: RepositoryAccess,
  subject: Digest,
  entry: Descriptor,
  what: string,
): Promise<boolean> {
  const path = tagPath(access, subject);
  const label = `${what}: referrers tag ${fallbackTag(subject)}`;
  for (let attempt = 1;; attempt++) {
    const current = await getIndex(access, path, label, [404]);
    if (current?.index.manifests.some((d) => d.digest === entry.digest)) return attempt > 1;
    const doc = current ? current.raw : { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] };
    const bytes = encodeJson({ ...doc, manifests: [...(doc.manifests as unknown[]), entry] });
    const headers: Record<string, string> = { "content-type": MediaType.ociIndex };
    if (current?.etag) headers["if-match"] = current.etag;
    const f = await access.client.request(path, {
      method: "PUT",
      what: label,
      scope: access.scope,
      headers,
      body: bytes,
      pass: [412],
    });
    f.cancel();
    if (f.status !== 412) {
      const check = await getIndex(access, path, label, [404]);
      if (check?.index.manifests.some((d) => d.digest === entry.digest)) return true;
    }
    if (attempt >= UPDATE_TRIES) {
      throw new FormatError(`${label}: another client kept changing it; ${entry.digest} could not be added`);
    }
  }
}

function tagPath(access: RepositoryAccess, subject: Digest): string {
  return `/v2/${access.repository}/manifests/${fallbackTag(subject)}`;
}

/** An index fetched whole: parsed, as raw JSON (to keep every field), with its ETag and Link headers. */
interface FetchedIndex {
  index: ReturnType<typeof parseIndex>;
  raw: Record<string, unknown>;
  /** The URL that answered (after redirects): what a relative next-page Link is resolved against. */
  url: URL;
  etag?: string;
  link?: string;
}

/** GETs an image index, or undefined when the answer is one of `absent`. Must be an OCI image index. */
async function getIndex(
  access: RepositoryAccess,
  path: string | RegistryUrl,
  what: string,
  absent: number[],
): Promise<FetchedIndex | undefined> {
  return await withDeadline(what, access.deadlineMs, async (signal) => {
    const f: Fetched = await access.client.request(path, {
      what,
      scope: access.scope,
      headers: { accept: MediaType.ociIndex },
      pass: absent,
      signal,
    });
    if (absent.includes(f.status)) {
      f.cancel();
      return undefined;
    }
    const bytes = await f.bytes(INDEX_LIMIT, what);
    const raw = parseJson(bytes, what);
    const type = f.headers.get("content-type")?.split(";")[0].trim();
    const mediaType = (raw as { mediaType?: unknown })?.mediaType ?? type;
    if (mediaType !== MediaType.ociIndex) {
      throw new FormatError(`${what} is not an OCI image index (media type ${JSON.stringify(mediaType ?? "none")})`);
    }
    const index = parseIndex(bytes, what);
    const etag = f.headers.get("etag") ?? undefined;
    const link = f.headers.get("link") ?? undefined;
    return {
      index,
      raw: raw as Record<string, unknown>,
      url: f.url,
      ...(etag ? { etag } : {}),
      ...(link ? { link } : {}),
    };
  });
}

/** The `rel="next"` target of a Link header, if any. */
function nextPage(link: string | undefined): string | undefined {
  const m = /<([^>]+)>\s*;\s*rel="?next"?/.exec(link ?? "");
  return m ? m[1] : undefined;
}
