/**
 * Referrers listings (src/transport/docker/referrer_listing.ts, referrers.ts):
 * read once, only the fields discovery uses kept, malformed entries passed
 * over, and bounded in pages, bytes and entries, so a hostile listing (a
 * million empty objects, thousands of annotations per entry, a next page that
 * is itself) costs a pull its bytes, not gigabytes. The bombs of issue 20,
 * served by a hostile front before a real docker-registry.
 */
import assert from "node:assert/strict";
import { DELTA_ARTIFACT_TYPE, DeltaAnnotation } from "../src/delta/annotations.ts";
import { FormatError } from "../src/errors.ts";
import type { Descriptor } from "../src/oci/documents.ts";
import { readListing } from "../src/transport/docker/referrer_listing.ts";
import { MAX_LISTED } from "../src/transport/docker/referrers.ts";
import { sha256 } from "../src/util/digest.ts";
import { runCli, tempDir } from "./helpers/cli.ts";
import {
  deltaEntry,
  emptyObjectsIndex,
  indexBytes,
  type ListingAnswer,
  manyAnnotations,
  startHostileFront,
  twoVersions,
} from "./helpers/hostile_front.ts";
import { haveTools, run } from "./helpers/interop.ts";

const TOOLS = ["docker-registry", "skopeo"];
const enc = new TextEncoder();
const dec = new TextDecoder();
const SOURCE = DeltaAnnotation.sourceConfig;
const deltas = (annotations: readonly string[] = [SOURCE], room = 100) => ({
  keep: (d: Descriptor) => d.artifactType === DELTA_ARTIFACT_TYPE,
  annotations,
  room,
});

Deno.test("referrer listing: only the fields discovery uses are kept; other types and malformed entries passed over", () => {
  const held = sha256("held config");
  const good = deltaEntry(sha256("d1"), held, { ...manyAnnotations(50), [DeltaAnnotation.target]: sha256("t") });
  const bytes = indexBytes([
    { ...good, platform: { os: "linux" }, urls: ["file:///etc/passwd"], extra: { deep: [[[]]] } },
    {
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      digest: sha256("sbom"),
      size: 5,
      artifactType: "x/sbom",
    },
    {},
    { ...good, digest: "sha256:short" },
    { ...good, size: -1 },
    { ...good, size: 1.5 },
    { ...good, mediaType: "" },
    { ...good, annotations: { [SOURCE]: 7 } },
    [],
    "text",
    deltaEntry(sha256("d2"), held),
  ], { annotations: { big: "x".repeat(10_000) }, subject: { any: "thing" } });
  const page = readListing(bytes, "listing", deltas());
  assert.deepEqual(page.kept, [
    {
      mediaType: good.mediaType,
      digest: sha256("d1"),
      size: good.size,
      artifactType: DELTA_ARTIFACT_TYPE,
      annotations: { [SOURCE]: held },
    },
    deltaEntry(sha256("d2"), held),
  ]);
  assert.equal(page.entries, 11);
  assert.equal(page.malformed, 8);
  assert.equal(page.dropped, 0);
  assert.equal(page.mediaType, "application/vnd.oci.image.index.v1+json");
  // No annotation asked for: none kept.
  assert.equal(readListing(bytes, "listing", deltas([])).kept[0].annotations, undefined);
});

Deno.test("referrer listing: entries past the room are counted, not kept; the manifests list can be appended to", () => {
  const entries = Array.from({ length: 10 }, (_, i) => deltaEntry(sha256(`d${i}`), sha256("c")));
  const bytes = indexBytes(entries, { later: 1 });
  const page = readListing(bytes, "listing", deltas([SOURCE], 3));
  assert.deepEqual(page.kept.map((d) => d.digest), [0, 1, 2].map((i) => sha256(`d${i}`)));
  assert.equal(page.dropped, 7);
  // Appending at insertAt keeps every byte of the entries there and yields valid JSON.
  const added = enc.encode(',{"x":1}');
  const spliced = dec.decode(bytes.subarray(0, page.insertAt)) + dec.decode(added) +
    dec.decode(bytes.subarray(page.insertAt));
  assert.deepEqual(JSON.parse(spliced).manifests, [...entries, { x: 1 }]);
  const empty = readListing(enc.encode('{"schemaVersion":2, "manifests": [ ] }'), "l", deltas());
  assert.equal(empty.hasEntries, false);
  assert.equal(empty.insertAt, 35);
  assert.equal(empty.mediaType, undefined);
});

Deno.test("referrer listing: a document that is not an index is refused in one line", () => {
  const refused = (text: string, message: RegExp) =>
    assert.throws(() => readListing(enc.encode(text), "the listing", deltas()), (e) => {
      assert.ok(e instanceof FormatError, String(e));
      assert.match(e.message, message);
      return true;
    });
  refused("[]", /^the listing is not a JSON object$/);
  refused('{"schemaVersion":2}', /^the listing has no manifests list$/);
  refused('{"schemaVersion":1,"manifests":[]}', /^the listing has schemaVersion 1, expected 2$/);
  refused('{"schemaVersion":2,"manifests":{}}', /^the listing has no manifests list$/);
  refused('{"schemaVersion":2,"manifests":[],"manifests":[]}', /^the listing has two manifests lists$/);
  refused('{"schemaVersion":2,"manifests":[]} x', /^the listing is not valid JSON \(at byte 35: "x"\)$/);
  refused(
    "TOP-SECRET-host-file-contents-much-longer-than-an-excerpt",
    /^the listing is not valid JSON \(at byte 0: "TOP-SECRET-host-file-con"\.\.\.\)$/,
  );
});

/** A page of about 4 MB filled with copies of `entry`. */
function filledPage(entry: unknown, extra: Record<string, unknown> = {}): Uint8Array<ArrayBuffer> {
  const one = JSON.stringify(entry).length + 1;
  return indexBytes(Array(Math.floor((4_000_000 - 200) / one)).fill(entry), extra);
}

Deno.test({
  name: "referrer listing: hostile listings are cut short in pages, bytes and entries, and the pull goes on in full",
  ignore: !haveTools("referrer listing bombs", ...TOOLS),
  async fn() {
    await using tmp = await tempDir();
    const s = await twoVersions(tmp.path);
    try {
      const self = `</v2/app/referrers/${s.v2.manifest}?artifactType=${encodeURIComponent(DELTA_ARTIFACT_TYPE)}>`;
      const unheld = sha256("a config nobody holds");
      const cases: {
        name: string;
        listing: (n: number) => ListingAnswer;
        pages: number;
        listed: number;
        truncated: string;
      }[] = [
        // 4 MB of empty objects (1.3 M of them) and a next page that is itself.
        {
          name: "empty objects",
          listing: () => ({ body: emptyObjectsIndex(4_000_000), link: `${self}; rel="next"` }),
          pages: 1,
          listed: 0,
          truncated: "its pages loop",
        },
        // Deltas from nowhere, 3,000 annotation keys each, on ever new pages.
        {
          name: "annotation keys",
          listing: (n) => ({
            body: filledPage(deltaEntry(sha256("x"), unheld, manyAnnotations(3000))),
            link: `</v2/app/referrers/${s.v2.manifest}?page=${n + 1}>; rel="next"`,
          }),
          pages: 3,
          listed: 3 *
            Math.floor(
              (4_000_000 - 200) / (JSON.stringify(deltaEntry(sha256("x"), unheld, manyAnnotations(3000))).length + 1),
            ),
          truncated: `it is longer than ${8 << 20} bytes`,
        },
        // More deltas of the type than are kept, on one page.
        {
          name: "too many deltas",
          listing: () => ({ body: filledPage(deltaEntry(sha256("x"), unheld)) }),
          pages: 1,
          listed: MAX_LISTED,
          truncated: `it lists more than ${MAX_LISTED} of type ${DELTA_ARTIFACT_TYPE}`,
        },
      ];
      for (const c of cases) {
        await using front = startHostileFront(s.reg.url, { listing: c.listing });
        const repo = `${tmp.path}/${c.name.replace(/ /g, "-")}`;
        await run("cp", "-a", s.repo, repo);
        const r = await runCli(["--repo", repo, "--json", "pull", `docker://${front.host}/app:v2`], { HOME: tmp.path });
        assert.equal(r.code, 0, r.stderr);
        const out = JSON.parse(r.stdout);
        assert.equal(out.manifest, s.v2.manifest, c.name);
        assert.equal(out.discovery.way, "full");
        assert.equal(out.discovery.truncated, c.truncated, c.name);
        assert.equal(out.discovery.listed, c.listed, c.name);
        assert.equal(front.listings(), c.pages, `${c.name}: pages read`);
        assert.match(
          r.stderr,
          new RegExp(`\\(the listing was cut short: ${c.truncated}\\); pulling the full image\\n$`),
        );
      }
    } finally {
      await s.reg.stop();
    }
  },
});
