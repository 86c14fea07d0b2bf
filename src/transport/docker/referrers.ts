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
import { type Descriptor, encodeJson } from "../../oci/documents.ts";
import { MediaType } from "../../oci/media_types.ts";
import { type Digest, parseDigest } from "../../util/digest.ts";
import { concat } from "../../util/streams.ts";
import { ellipsize } from "../../util/text.ts";
import type { ReferrerList, ReferrerOptions } from "../source.ts";
import type { Fetched, RegistryClient } from "./client.ts";
import { type ListingFilter, type ListingPage, readListing } from "./referrer_listing.ts";
import type { RegistryFacts } from "./registry_facts.ts";
import { pathUrl, type RegistryUrl, registryUrl } from "./registry_url.ts";
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

/** Largest index (one page of a listing) accepted. */
const INDEX_LIMIT = 4 << 20;
/** Pages of a referrers answer followed (`Link: <…>; rel="next"`). */
const MAX_PAGES = 8;
/** Bytes of a listing read over all its pages: no further page is asked for past this. */
const LISTING_BYTES = 8 << 20;
/** Entries of the artifact type kept from one listing. */
export const MAX_LISTED = 4096;
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
 * (a registry need not apply the filter), and of each entry only the
 * annotations in `options.annotations` are kept. A registry remembered to lack
 * the API is asked for the fallback tag only (one request, not two); one found
 * to lack it is remembered so. The listing is bounded: at most 8 pages, 8 MiB
 * and {@link MAX_LISTED} entries of the type; past that it is cut short and
 * says why (`truncated`).
 */
export async function listReferrers(
  access: RepositoryAccess,
  subject: Digest,
  artifactType: string,
  what: string,
  options: ReferrerOptions = {},
): Promise<ReferrerList> {
  const filter: ListingFilter = {
    keep: (d) => d.artifactType === artifactType,
    annotations: options.annotations ?? [],
    room: MAX_LISTED,
  };
  const { signal } = options;
  const fromTag = async (): Promise<ReferrerList> => {
    const label = `${what}: referrers tag of ${subject}`;
    const tagged = await getIndex(access, tagPath(access, subject), label, [404], filter, signal);
    if (tagged === undefined) return { descriptors: [], via: "none" };
    const truncated = overflow(tagged.page, artifactType);
    return { descriptors: tagged.page.kept, via: "tag", ...(truncated ? { truncated } : {}) };
  };
  const { facts } = access;
  if (facts && await facts.store.lacksReferrersApi(facts.registry)) return await fromTag();
  const label = `${what}: referrers of ${subject}`;
  const query = new URLSearchParams({ artifactType });
  let next: RegistryUrl | undefined = pathUrl(
    `/v2/${access.repository}/referrers/${subject}?${query}`,
    access.client.origin,
  );
  const read = new Set<string>();
  const found: Descriptor[] = [];
  let bytes = 0;
  let truncated: string | undefined;
  for (let page = 0; next !== undefined; page++) {
    if (page >= MAX_PAGES) truncated = `it has more than ${MAX_PAGES} pages`;
    else if (bytes >= LISTING_BYTES) truncated = `it is longer than ${LISTING_BYTES} bytes`;
    else if (read.has(next.href)) truncated = "its pages loop";
    if (truncated) break;
    read.add(next.href);
    const room = { ...filter, room: MAX_LISTED - found.length };
    const answer: FetchedIndex | undefined = await getIndex(
      access,
      next,
      label,
      [400, 404, 405, 406, 501],
      room,
      signal,
    );
    if (answer === undefined) {
      if (page > 0) break;
      await facts?.store.recordNoReferrersApi(facts.registry);
      return await fromTag();
    }
    bytes += answer.bytes.length;
    found.push(...answer.page.kept);
    truncated = overflow(answer.page, artifactType);
    if (truncated) break;
    const link = nextPage(answer.link);
    next = link === undefined
      ? undefined
      : registryUrl(link, { kind: "next-page Link", base: answer.url, origin: access.client.origin }, label);
  }
  return { descriptors: found, via: "api", ...(truncated ? { truncated } : {}) };
}

/** Why a listing is cut short when a page had more entries of the type than there was room for. */
function overflow(page: ListingPage, artifactType: string): string | undefined {
  return page.dropped > 0 ? `it lists more than ${MAX_LISTED} of type ${artifactType}` : undefined;
}

/**
 * Adds `entry` (a manifest whose subject is `subject`, with its artifactType and
 * annotations) to the fallback index of `subject`, keeping every entry already
 * there byte for byte (the new one is written into the `manifests` list). The
 * update is conditional on the index not having changed (`If-Match`) where the
 * registry supports that, and checked by reading it back, so an entry lost to
 * a concurrent writer is added again. Returns false when it was there already.
 */
export async function addToFallbackIndex(
  access: RepositoryAccess,
  subject: Digest,
  entry: Descriptor,
  what: string,
): Promise<boolean> {
  const path = tagPath(access, subject);
  const label = `${what}: referrers tag ${fallbackTag(subject)}`;
  const ours: ListingFilter = { keep: (d) => d.digest === entry.digest, annotations: [], room: 1 };
  for (let attempt = 1;; attempt++) {
    const current = await getIndex(access, path, label, [404], ours);
    if (current?.page.kept.length) return attempt > 1;
    const bytes = current
      ? appendEntry(current, entry)
      : encodeJson({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [entry] });
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
      const check = await getIndex(access, path, label, [404], ours);
      if (check?.page.kept.length) return true;
    }
    if (attempt >= UPDATE_TRIES) {
      throw new FormatError(`${label}: another client kept changing it; ${entry.digest} could not be added`);
    }
  }
}

/** The index's bytes with `entry` added at the end of its `manifests` list; the rest as it was. */
function appendEntry(index: FetchedIndex, entry: Descriptor): Uint8Array {
  const at = index.page.insertAt;
  const added = encodeJson(entry);
  const comma = new Uint8Array(index.page.hasEntries ? [0x2c] : []);
  const { bytes } = index;
  return concat([bytes.subarray(0, at), comma, added, bytes.subarray(at)]);
}

function tagPath(access: RepositoryAccess, subject: Digest): string {
  return `/v2/${access.repository}/manifests/${fallbackTag(subject)}`;
}

/** An index fetched whole and read ({@link readListing}), with its ETag and Link headers. */
interface FetchedIndex {
  page: ListingPage;
  bytes: Uint8Array;
  /** The URL that answered (after redirects): what a relative next-page Link is resolved against. */
  url: URL;
  etag?: string;
  link?: string;
}

/**
 * GETs an image index and reads it with `filter`, or undefined when the answer
 * is one of `absent`. Must be an OCI image index. Within the document
 * deadline, and stopped by `signal`.
 */
async function getIndex(
  access: RepositoryAccess,
  path: string | RegistryUrl,
  what: string,
  absent: number[],
  filter: ListingFilter,
  signal?: AbortSignal,
): Promise<FetchedIndex | undefined> {
  return await withDeadline(what, access.deadlineMs, async (deadline) => {
    const f: Fetched = await access.client.request(path, {
      what,
      scope: access.scope,
      headers: { accept: MediaType.ociIndex },
      pass: absent,
      signal: signal ? AbortSignal.any([deadline, signal]) : deadline,
    });
    if (absent.includes(f.status)) {
      f.cancel();
      return undefined;
    }
    const bytes = await f.bytes(INDEX_LIMIT, what);
    const page = readListing(bytes, what, filter);
    const type = f.headers.get("content-type")?.split(";")[0].trim();
    const mediaType = page.mediaType ?? type;
    if (mediaType !== MediaType.ociIndex) {
      const shown = ellipsize(JSON.stringify(mediaType ?? "none"), 80);
      throw new FormatError(`${what} is not an OCI image index (media type ${shown})`);
    }
    const etag = f.headers.get("etag") ?? undefined;
    const link = f.headers.get("link") ?? undefined;
    return { page, bytes, url: f.url, ...(etag ? { etag } : {}), ...(link ? { link } : {}) };
  });
}

/** The `rel="next"` target of a Link header, if any. */
function nextPage(link: string | undefined): string | undefined {
  const m = /<([^>]+)>\s*;\s*rel="?next"?/.exec(link ?? "");
  return m ? m[1] : undefined;
}
