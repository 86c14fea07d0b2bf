/**
 * Test helper: the zstd:chunked readers' fuzz targets (`toc`), kept apart from
 * `fuzz.ts`, which gathers them. A valid blob is written once; each case
 * mutates its TOC (the JSON, or the compressed bytes), its tar-split or its
 * annotations, and reads them as a partial pull will: every case must succeed
 * or fail with a DeltashipError.
 */
import { createHash } from "node:crypto";
import zlib from "node:zlib";
import { chunkedLayout } from "../../src/chunked/annotations.ts";
import { checkTarSplit, readTarSplit } from "../../src/chunked/tar_split.ts";
import { parseToc, readToc } from "../../src/chunked/toc_reader.ts";
import { chunkedSampleTar, writeChunked } from "./chunked.ts";
import type { FuzzCase, Rng } from "./fuzz.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const sha = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const zstd = (b: Uint8Array) => new Uint8Array(zlib.zstdCompressSync(b));

/** Values a hostile TOC or tar-split might put where a number or string goes. */
const HOSTILE = [
  "-1",
  "0",
  "1e3",
  "1.5",
  "9007199254740993",
  "18446744073709551615",
  '""',
  '"../../etc/passwd"',
  '"/abs"',
  '"\\u0000"',
  '"\\ud800"',
  "null",
  "true",
  "[]",
  "{}",
  '"zeros"',
  '"chunk"',
  '"sha256:00"',
  '"' + "a".repeat(5000) + '"',
];

/** One JSON-aware or byte-level mutation of a JSON text. */
function mutateJson(rng: Rng, text: string): string {
  switch (rng.int(6)) {
    case 0: { // a value replaced
      const values = [...text.matchAll(/:(-?[0-9]+|"[^"]*")/g)];
      if (values.length === 0) return text;
      const m = rng.pick(values);
      return text.slice(0, m.index! + 1) + rng.pick(HOSTILE) + text.slice(m.index! + m[0].length);
    }
    case 1: { // an object duplicated or dropped
      const objects = [...text.matchAll(/\{[^{}]*\}/g)];
      if (objects.length === 0) return text;
      const m = rng.pick(objects);
      const copy = rng.chance(0.5) ? `${m[0]},${m[0]}` : "";
      return text.slice(0, m.index!) + copy + text.slice(m.index! + m[0].length);
    }
    case 2: { // two numbers swapped
      const nums = [...text.matchAll(/-?[0-9]{2,}/g)];
      if (nums.length < 2) return text;
      const [a, b] = [rng.pick(nums), rng.pick(nums)].sort((x, y) => x.index! - y.index!);
      if (a.index === b.index) return text;
      return text.slice(0, a.index!) + b[0] + text.slice(a.index! + a[0].length, b.index!) + a[0] +
        text.slice(b.index! + b[0].length);
    }
    case 3: // cut short
      return text.slice(0, rng.int(text.length));
    case 4: { // a byte changed
      const at = rng.int(text.length);
      return text.slice(0, at) +
        String.fromCharCode(rng.pick([0x22, 0x7b, 0x7d, 0x5b, 0x5d, 0x2c, 0x3a, 0x5c, 0x30, 0x20])) +
        text.slice(at + 1);
    }
    default: { // deep nesting or a large unknown key
      const at = text.indexOf("{", 1);
      const junk = rng.chance(0.5) ? `"x":${"[".repeat(40)}${"]".repeat(40)},` : `"y":"${"z".repeat(1 << 16)}",`;
      return at < 0 ? text : text.slice(0, at + 1) + junk + text.slice(at + 1);
    }
  }
}

/** The `toc` target: the readers of a TOC, a tar-split and the annotations. */
export async function chunkedFuzzTargets(): Promise<Record<string, FuzzCase>> {
  const { blob, annotations } = await writeChunked(chunkedSampleTar());
  const layout = chunkedLayout(annotations, blob.length, "fuzz")!;
  const contentEnd = layout.toc.offset - 8;
  const tocBytes = blob.slice(layout.toc.offset, layout.toc.offset + layout.toc.length);
  const toc = readToc(tocBytes, layout, contentEnd, "fuzz");
  const tocText = dec.decode(zlib.zstdDecompressSync(tocBytes));
  const ts = layout.tarSplit!;
  const tarSplitText = dec.decode(zlib.zstdDecompressSync(blob.subarray(ts.offset, ts.offset + ts.length)));
  return {
    toc(rng) {
      switch (rng.int(4)) {
        case 0: { // the JSON, mutated, in pieces of any size
          let text = tocText;
          for (let i = 1 + rng.int(3); i > 0; i--) text = mutateJson(rng, text);
          const bytes = enc.encode(text);
          const size = rng.pick([1, 7, 1000, bytes.length || 1]);
          const pieces = function* () {
            for (let o = 0; o < bytes.length; o += size) yield bytes.subarray(o, o + size);
          };
          parseToc(pieces(), contentEnd, "fuzz TOC");
          return Promise.resolve();
        }
        case 1: { // the compressed TOC, bytes changed, with a digest that matches or not
          const bytes = tocBytes.slice();
          for (let i = 1 + rng.int(4); i > 0; i--) bytes[rng.int(bytes.length)] = rng.int(256);
          const digest = rng.chance(0.8) ? sha(bytes) : layout.tocDigest;
          readToc(bytes, { ...layout, tocDigest: digest }, contentEnd, "fuzz");
          return Promise.resolve();
        }
        case 2: { // the tar-split, mutated, read and checked against the valid TOC
          let text = tarSplitText;
          for (let i = 1 + rng.int(3); i > 0; i--) text = mutateJson(rng, text);
          const raw = enc.encode(text);
          const z = zstd(raw);
          const expected = { digest: sha(z), length: z.length, uncompressedLength: raw.length };
          checkTarSplit(toc, readTarSplit(z, expected, "fuzz"), 1 << 30, "fuzz");
          return Promise.resolve();
        }
        default: { // the annotations
          const mutated = { ...annotations };
          const key = rng.pick(Object.keys(mutated));
          mutated[key] = rng.chance(0.5)
            ? mutated[key].split(":").map((p) => (rng.chance(0.3) ? rng.pick(HOSTILE) : p)).join(":")
            : rng.pick(HOSTILE);
          chunkedLayout(mutated, rng.chance(0.8) ? blob.length : rng.int(blob.length), "fuzz");
          return Promise.resolve();
        }
      }
    },
  };
}
