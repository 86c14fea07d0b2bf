/**
 * Reading one referrers listing (a page of the referrers API, or a fallback
 * index): an OCI image index read once, selectively (util/json_reader.ts), and
 * only the fields discovery and the fallback-index update use kept: each
 * entry's mediaType, digest, size, artifactType and the annotations asked for.
 * Whatever else a registry puts in a listing (unknown fields, thousands of
 * annotations, a million empty objects) is checked and passed over, never
 * built, and at most `room` entries are kept: what a page costs is its bytes
 * (at most the page limit) plus the entries kept.
 *
 * An entry that is not a descriptor is passed over and counted, never fatal:
 * a listing is shared by every client that publishes referrers, and one
 * malformed artifact must not hide the others.
 *
 * @module
 */
import { FormatError } from "../../errors.ts";
import type { Descriptor } from "../../oci/documents.ts";
import { isDigest } from "../../util/digest.ts";
import { JsonReader } from "../../util/json_reader.ts";

/** What to keep of a listing. */
export interface ListingFilter {
  /** Keep this entry? (Seen with the fields below only.) */
  keep(entry: Descriptor): boolean;
  /** Annotation keys kept on entries; all others are passed over. */
  annotations: readonly string[];
  /** Most entries kept; further ones that `keep` accepts are counted in `dropped`. */
  room: number;
}

/** One page of a listing, as read. */
export interface ListingPage {
  /** The entries kept, in listing order. */
  kept: Descriptor[];
  /** Entries in the page, kept or not. */
  entries: number;
  /** Entries that are not descriptors (passed over). */
  malformed: number;
  /** Entries `keep` accepted past `room`. */
  dropped: number;
  /** The index's own `mediaType`, if it names one. */
  mediaType?: string;
  /** The offset of the `]` that closes `manifests` (where an appended entry goes), and whether it has entries. */
  insertAt: number;
  hasEntries: boolean;
}

/** Longest string field kept (media types, digests, annotation values): longer makes the entry malformed. */
const FIELD_LIMIT = 4096;

/** Reads `bytes`, a listing named `what` in errors, keeping what `filter` asks for. */
export function readListing(bytes: Uint8Array, what: string, filter: ListingFilter): ListingPage {
  const json = new JsonReader(bytes, what);
  const page: ListingPage = { kept: [], entries: 0, malformed: 0, dropped: 0, insertAt: -1, hasEntries: false };
  let schemaVersion: unknown;
  if (json.peek() !== "object") throw new FormatError(`${what} is not a JSON object`);
  json.object((name) => {
    if (name === "schemaVersion") schemaVersion = json.peek() === "number" ? json.number() : undefined;
    else if (name === "mediaType") page.mediaType = json.peek() === "string" ? json.string(FIELD_LIMIT) : undefined;
    else if (name === "manifests") {
      if (page.insertAt >= 0) throw new FormatError(`${what} has two manifests lists`);
      if (json.peek() !== "array") throw new FormatError(`${what} has no manifests list`);
      json.array(() => {
        page.entries++;
        page.hasEntries = true;
        const entry = readEntry(json, filter.annotations);
        if (entry === undefined) page.malformed++;
        else if (filter.keep(entry)) {
          if (page.kept.length < filter.room) page.kept.push(entry);
          else page.dropped++;
        }
      });
      page.insertAt = json.offset - 1;
    }
  });
  json.end();
  if (schemaVersion !== 2) throw new FormatError(`${what} has schemaVersion ${schemaVersion}, expected 2`);
  if (page.insertAt < 0) throw new FormatError(`${what} has no manifests list`);
  return page;
}

/** One entry: a descriptor with the annotations asked for, or undefined when it is not one. */
function readEntry(json: JsonReader, wanted: readonly string[]): Descriptor | undefined {
  if (json.peek() !== "object") return undefined;
  const fields: { mediaType?: string; digest?: string; size?: number; artifactType?: string } = {};
  let annotations: Record<string, string> | undefined;
  let bad = false;
  const text = () => (json.peek() === "string" ? json.string(FIELD_LIMIT) : undefined);
  json.object((name) => {
    switch (name) {
      case "mediaType":
      case "digest":
      case "artifactType": {
        const v = text();
        if (v === undefined) bad = true;
        else fields[name] = v;
        return;
      }
      case "size":
        if (json.peek() === "number") fields.size = json.number();
        else bad = true;
        return;
      case "annotations":
        if (json.peek() !== "object") return void (bad = true);
        annotations = {};
        json.object((key) => {
          if (key === undefined || !wanted.includes(key)) return;
          const v = text();
          if (v === undefined) bad = true;
          else annotations![key] = v;
        });
        return;
    }
  });
  const { mediaType, digest, size, artifactType } = fields;
  if (bad || !mediaType || digest === undefined || !isDigest(digest)) return undefined;
  if (size === undefined || !Number.isSafeInteger(size) || size < 0) return undefined;
  return {
    mediaType,
    digest,
    size,
    ...(artifactType !== undefined ? { artifactType } : {}),
    ...(annotations && Object.keys(annotations).length ? { annotations } : {}),
  };
}
