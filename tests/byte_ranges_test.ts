/**
 * Byte ranges of a blob (transport/docker/byte_ranges.ts): merged ranges,
 * multipart/byteranges answers parsed within bounds, servers that answer one
 * range a request, or none (200), and what docker-registry itself answers.
 */
import assert from "node:assert/strict";
import { Fetched } from "../src/transport/docker/client.ts";
import {
  coalesceRanges,
  fetchRanges,
  type RangePiece,
  type RangeSource,
  type RangeStats,
  RangeUnsupportedError,
} from "../src/transport/docker/byte_ranges.ts";
import { TransportError } from "../src/errors.ts";
import { DockerSource } from "../src/transport/docker/source.ts";
import { concat } from "../src/util/streams.ts";
import { noise } from "./helpers/chunked.ts";
import { haveTools } from "./helpers/interop.ts";
import { startRegistry } from "./helpers/registry.ts";
import { sha, uploadBlob } from "./helpers/partial.ts";

const BLOB = noise(200_000, 3);
const enc = new TextEncoder();

type Mode = "multipart" | "first-only" | "ignore" | "too-many-parts" | "huge-header" | "at-most-two";

/** A fake registry answering Range requests for {@link BLOB} the way `mode` says. */
function fakeSource(mode: Mode, requests: string[] = []): RangeSource {
  return {
    what: "blob sha256:test",
    size: BLOB.length,
    attempts: 3,
    open(range: string) {
      requests.push(range);
      const spans = range.replace(/^bytes=/, "").split(",").map((s) => s.split("-").map(Number));
      const controller = new AbortController();
      const url = new URL("http://fake/v2/x/blobs/sha256:test");
      const answer = (body: Uint8Array, status: number, headers: Record<string, string>) =>
        Promise.resolve(
          new Fetched(new Response(body as Uint8Array<ArrayBuffer>, { status, headers }), url, controller, 5000),
        );
      if (mode === "ignore") return answer(BLOB, 200, {});
      if (mode === "at-most-two" && spans.length > 2) return answer(new Uint8Array(0), 431, {});
      if (mode === "first-only" || spans.length === 1) {
        const [a, b] = spans[0];
        return answer(BLOB.slice(a, b + 1), 206, { "content-range": `bytes ${a}-${b}/${BLOB.length}` });
      }
      const boundary = "3d6b6a416f9b5";
      const parts: Uint8Array[] = [];
      const list = mode === "too-many-parts" ? [...spans, ...spans] : spans;
      for (const [a, b] of list) {
        const extra = mode === "huge-header" ? `X-Filler: ${"x".repeat(10_000)}\r\n` : "";
        parts.push(enc.encode(
          `\r\n--${boundary}\r\nContent-Type: application/octet-stream\r\n${extra}` +
            `Content-Range: bytes ${a}-${b}/${BLOB.length}\r\n\r\n`,
        ));
        parts.push(BLOB.slice(a, b + 1));
      }
      parts.push(enc.encode(`\r\n--${boundary}--\r\n`));
      return answer(concat(parts), 206, { "content-type": `multipart/byteranges; boundary=${boundary}` });
    },
  };
}

async function collect(gen: AsyncGenerator<RangePiece>): Promise<Map<number, Uint8Array>> {
  const out: RangePiece[] = [];
  for await (const p of gen) out.push({ offset: p.offset, bytes: p.bytes.slice() });
  const joined = new Map<number, Uint8Array>();
  let start = -1;
  let end = -1;
  let parts: Uint8Array[] = [];
  for (const p of out) {
    assert.ok(p.offset >= end, "pieces come in order");
    if (p.offset !== end) {
      if (start >= 0) joined.set(start, concat(parts));
      start = p.offset;
      parts = [];
    }
    parts.push(p.bytes);
    end = p.offset + p.bytes.length;
  }
  if (start >= 0) joined.set(start, concat(parts));
  return joined;
}

const WANTED = [
  { offset: 10, length: 100 },
  { offset: 1000, length: 5000 },
  { offset: 8000, length: 1 },
  { offset: 150_000, length: 49_999 },
];

function expectWanted(got: Map<number, Uint8Array>): void {
  assert.deepEqual([...got.keys()], WANTED.map((w) => w.offset));
  for (const w of WANTED) assert.deepEqual(got.get(w.offset), BLOB.subarray(w.offset, w.offset + w.length));
}

Deno.test("byte ranges: ranges closer than the gap merge, others stay apart", () => {
  assert.deepEqual(coalesceRanges(WANTED, 0), WANTED);
  assert.deepEqual(coalesceRanges(WANTED, 4096), [
    { offset: 10, length: 7990 + 1 },
    { offset: 150_000, length: 49_999 },
  ]);
});

Deno.test("byte ranges: a multipart/byteranges answer gives exactly the bytes asked for, merged gaps dropped", async () => {
  const requests: string[] = [];
  const stats: RangeStats = { requests: 0, bytes: 0, oneRangeAnswers: 0 };
  expectWanted(
    await collect(fetchRanges(fakeSource("multipart", requests), WANTED, { gap: 4096, perRequest: 64 }, stats)),
  );
  assert.deepEqual(requests, ["bytes=10-8000,150000-199998"]);
  assert.equal(stats.requests, 1);
  assert.ok(stats.bytes > 8000 + 49_999, "framing and merged gaps counted");
});

Deno.test("byte ranges: at most perRequest ranges a request", async () => {
  const requests: string[] = [];
  expectWanted(await collect(fetchRanges(fakeSource("multipart", requests), WANTED, { gap: 0, perRequest: 3 })));
  assert.deepEqual(requests, ["bytes=10-109,1000-5999,8000-8000", "bytes=150000-199998"]);
});

Deno.test("byte ranges: a server that answers one range a request is then asked one at a time", async () => {
  const requests: string[] = [];
  const stats: RangeStats = { requests: 0, bytes: 0, oneRangeAnswers: 0 };
  expectWanted(
    await collect(fetchRanges(fakeSource("first-only", requests), WANTED, { gap: 0, perRequest: 64 }, stats)),
  );
  assert.equal(stats.oneRangeAnswers, 1);
  assert.deepEqual(requests, [
    "bytes=10-109,1000-5999,8000-8000,150000-199998",
    "bytes=1000-5999",
    "bytes=8000-8000",
    "bytes=150000-199998",
  ]);
});

Deno.test("byte ranges: a server that refuses too many ranges (431) is asked again with half as many", async () => {
  const requests: string[] = [];
  expectWanted(await collect(fetchRanges(fakeSource("at-most-two", requests), WANTED, { gap: 0, perRequest: 64 })));
  assert.deepEqual(requests, [
    "bytes=10-109,1000-5999,8000-8000,150000-199998",
    "bytes=10-109,1000-5999",
    "bytes=8000-8000,150000-199998",
  ]);
});

Deno.test("byte ranges: 200 to a Range request is RangeUnsupportedError", async () => {
  await assert.rejects(collect(fetchRanges(fakeSource("ignore"), WANTED)), RangeUnsupportedError);
});

Deno.test("byte ranges: a multipart answer with more parts than ranges, or an over-long part header, is refused", async () => {
  const policy = { gap: 0, perRequest: 64 };
  await assert.rejects(
    collect(fetchRanges(fakeSource("too-many-parts"), WANTED, policy)),
    (e: Error) => e instanceof TransportError && /more parts than the 4 ranges asked for/.test(e.message),
  );
  await assert.rejects(
    collect(fetchRanges(fakeSource("huge-header"), WANTED, policy)),
    (e: Error) => e instanceof TransportError && /header line over the limit/.test(e.message),
  );
});

Deno.test("byte ranges: ranges must be sorted, apart and inside the blob", async () => {
  await assert.rejects(
    collect(fetchRanges(fakeSource("multipart"), [{ offset: 10, length: 5 }, { offset: 12, length: 5 }])),
  );
  await assert.rejects(collect(fetchRanges(fakeSource("multipart"), [{ offset: BLOB.length - 1, length: 2 }])));
});

Deno.test({
  name: "byte ranges: docker-registry answers one range with 206 and several with multipart/byteranges",
  ignore: !haveTools("byte ranges against docker-registry", "docker-registry"),
  async fn() {
    await using reg = await startRegistry();
    const digest = await uploadBlob(reg.url, "ranges/blob", BLOB);
    assert.equal(digest, sha(BLOB));
    const url = `${reg.url}/v2/ranges/blob/blobs/${digest}`;
    const one = await fetch(url, { headers: { range: "bytes=10-19" } });
    assert.equal(one.status, 206);
    assert.deepEqual(new Uint8Array(await one.arrayBuffer()), BLOB.subarray(10, 20));
    const many = await fetch(url, { headers: { range: "bytes=10-19,1000-1999" } });
    assert.equal(many.status, 206);
    assert.match(many.headers.get("content-type") ?? "", /^multipart\/byteranges; boundary=/);
    await many.body?.cancel();
    // And through the source, as a pull asks.
    const source = await DockerSource.open(`${reg.host}/ranges/blob:latest`);
    try {
      const stats: RangeStats = { requests: 0, bytes: 0, oneRangeAnswers: 0 };
      const desc = { mediaType: "application/octet-stream", digest, size: BLOB.length };
      expectWanted(await collect(source.blobRanges(desc, WANTED, stats)));
      assert.equal(stats.oneRangeAnswers, 0);
      assert.equal(stats.requests, 1, "all four ranges in one request");
    } finally {
      await source.close();
    }
  },
});
