/**
 * Test helper: the fuzz target of the referrers-listing reader
 * (src/transport/docker/referrer_listing.ts). Valid listings (a fallback index
 * and a referrers API page, with unknown fields, other artifact types and many
 * annotations) are mutated token-wise and byte-wise; the reader must succeed
 * or throw a DeltashipError, agree with JSON.parse on what is JSON, keep no
 * more than its room, keep only well-formed descriptors with only the
 * annotations asked for, and name a place where an appended entry makes valid
 * JSON.
 */
import { DELTA_ARTIFACT_TYPE, DeltaAnnotation } from "../../src/delta/annotations.ts";
import { readListing } from "../../src/transport/docker/referrer_listing.ts";
import { isDigest, sha256 } from "../../src/util/digest.ts";
import type { FuzzCase, Rng } from "./fuzz.ts";
import { deltaEntry, indexBytes, manyAnnotations } from "./hostile_front.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const WANTED: readonly string[] = [DeltaAnnotation.sourceConfig];

/** The listings mutated. */
function validListings(): Uint8Array[] {
  const config = sha256("config");
  const delta = (i: number, extra: Record<string, string> = {}) => deltaEntry(sha256(`d${i}`), config, extra);
  const sbom = {
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    digest: sha256("s"),
    size: 9,
    artifactType: "x/sbom",
  };
  return [
    indexBytes([delta(0), sbom, delta(1, { "org.example": "v", [DeltaAnnotation.target]: sha256("t") })]),
    indexBytes([delta(2, manyAnnotations(40)), { ...delta(3), platform: { os: "linux" }, urls: ["http://x/"] }], {
      annotations: { "org.opencontainers.image.created": "2025-01-01T00:00:00Z" },
      subject: { mediaType: "a/b", digest: sha256("subject"), size: 1 },
    }),
    enc.encode(` { "manifests" : [ ] , "schemaVersion" : 2 , "x" : [ { } , [ 1.5e3 , -0 , null , true ] ] } `),
    indexBytes(Array.from({ length: 30 }, (_, i) => delta(10 + i))),
  ];
}

/** Pieces of JSON a token-wise mutation inserts or puts in place of a byte run. */
const TOKENS = [
  "{}",
  "[]",
  "{",
  "}",
  "[",
  "]",
  ",",
  ":",
  '""',
  '"',
  "\\",
  "\\u",
  "\\ud800",
  "0",
  "-",
  "1e999",
  "-0.0",
  "01",
  "true",
  "null",
  "nul",
  '"schemaVersion":2',
  '"manifests":[]',
  '"size":-1',
  '"size":1.5',
  '"digest":"sha256:"',
  `"artifactType":"${DELTA_ARTIFACT_TYPE}"`,
  `"${DeltaAnnotation.sourceConfig}":7`,
  "\u00e9",
  "\u0000",
  " \n\t",
  "[".repeat(70),
  "{},".repeat(200),
];

/** One to four mutations: a token inserted or swapped in, a run of bytes dropped or doubled, a byte changed. */
function mutate(rng: Rng, input: Uint8Array): Uint8Array {
  let text = dec.decode(input);
  for (let i = 1 + rng.int(4); i > 0; i--) {
    const at = rng.int(text.length + 1);
    const run = 1 + rng.int(rng.chance(0.2) ? 64 : 4);
    switch (rng.int(5)) {
      case 0:
        text = text.slice(0, at) + rng.pick(TOKENS) + text.slice(at);
        break;
      case 1:
        text = text.slice(0, at) + rng.pick(TOKENS) + text.slice(at + run);
        break;
      case 2:
        text = text.slice(0, at) + text.slice(at + run);
        break;
      case 3:
        text = text.slice(0, at + run) + text.slice(at, at + run) + text.slice(at + run);
        break;
      default:
        text = text.slice(0, at) + String.fromCharCode(rng.int(128)) + text.slice(at + 1);
    }
  }
  const bytes = enc.encode(text);
  if (rng.chance(0.05) && bytes.length > 0) bytes[rng.int(bytes.length)] = 0x80 + rng.int(128); // bad UTF-8
  return bytes;
}

/** The listing reader's fuzz target. */
export function listingTarget(): FuzzCase {
  const listings = validListings();
  return (rng) => {
    const bytes = rng.chance(0.05) ? rng.pick(listings) : mutate(rng, rng.pick(listings));
    const room = rng.pick([0, 1, 2, 100]);
    let parsed: { manifests?: unknown } | undefined;
    try {
      // Bad UTF-8 read as U+FFFD: the reader checks the strings it keeps, and passes over the others.
      parsed = JSON.parse(dec.decode(bytes));
    } catch { /* not JSON: the reader must refuse it too */ }
    let page;
    try {
      page = readListing(bytes, "fuzz listing", {
        keep: (d) => d.artifactType === DELTA_ARTIFACT_TYPE,
        annotations: WANTED,
        room,
      });
    } catch (e) {
      if (parsed !== undefined && (e as Error).message.includes("not valid JSON")) {
        throw new Error(`JSON.parse accepts what the reader calls invalid JSON: ${(e as Error).message}`);
      }
      throw e;
    }
    if (parsed === undefined) throw new Error("the reader accepted what JSON.parse refuses");
    const manifests = parsed.manifests;
    if (!Array.isArray(manifests) || manifests.length !== page.entries) {
      throw new Error(`${page.entries} entries read; JSON.parse sees ${Array.isArray(manifests) && manifests.length}`);
    }
    if (page.kept.length > room) throw new Error(`${page.kept.length} kept, room ${room}`);
    for (const d of page.kept) {
      if (!isDigest(d.digest) || !Number.isSafeInteger(d.size) || d.size < 0 || !d.mediaType) {
        throw new Error(`kept a malformed entry ${JSON.stringify(d)}`);
      }
      if (Object.keys(d.annotations ?? {}).some((k) => !WANTED.includes(k))) {
        throw new Error(`kept annotations not asked for: ${JSON.stringify(d.annotations)}`);
      }
    }
    const added = dec.decode(bytes.subarray(0, page.insertAt)) + (page.hasEntries ? "," : "") + '{"added":1}' +
      dec.decode(bytes.subarray(page.insertAt));
    const after = JSON.parse(added).manifests;
    if (after.length !== page.entries + 1 || after.at(-1).added !== 1) throw new Error("the entry went elsewhere");
    return Promise.resolve();
  };
}
