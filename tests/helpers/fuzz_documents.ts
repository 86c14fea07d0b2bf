/**
 * Test helper: the fuzz target of the JSON document readers (`oci/documents.ts`:
 * manifests, indexes, image configs, as pulls, inspect and fsck read them). Valid
 * documents of every kind are mutated, by bytes or by JSON tokens (hostile
 * numbers and strings, deep nesting, arrays past the value budget, duplicate
 * keys), and read; a document that reads must be what the reader promises.
 */
import { DELTA_ARTIFACT_TYPE, DeltaAnnotation, DeltaContent } from "../../src/delta/annotations.ts";
import {
  checkImageLayers,
  documentKind,
  EMPTY_CONFIG,
  MAX_JSON_DEPTH,
  MAX_JSON_VALUES,
  parseImageConfig,
  parseIndex,
  parseJson,
  parseManifest,
} from "../../src/oci/documents.ts";
import { isDigest } from "../../src/util/digest.ts";
import { concat } from "../../src/util/streams.ts";
import { type FuzzCase, mutateBytes, type Rng } from "./fuzz.ts";
import { sampleTar, writeImage, writeIndex } from "./oci.ts";

const enc = new TextEncoder();

/** Values a hostile document puts where a number, string or object belongs. */
const HOSTILE_VALUES = [
  "1e400",
  "-1",
  "-0",
  "9007199254740993",
  "0.5",
  "1E2",
  "null",
  "true",
  '""',
  '"\\ud800"',
  '"\\u0000\\u001b]0;x\\u0007"',
  '"sha256:' + "0".repeat(64) + '"',
  '"sha256:' + "g".repeat(64) + '"',
  "{}",
  "[]",
  '{"__proto__":{"polluted":1}}',
  '{"a":1,"a":2}',
];

/** A value that costs far more to parse than to send: deep nesting, or a long array, around the budgets. */
function bomb(rng: Rng): string {
  if (rng.chance(0.5)) {
    const depth = MAX_JSON_DEPTH - 2 + rng.int(5);
    return "[".repeat(depth) + "]".repeat(depth);
  }
  const n = MAX_JSON_VALUES - 5 + rng.int(10);
  return `[${`${rng.pick(["{}", "[]", "0", '""'])},`.repeat(n - 1)}0]`;
}

/** Offsets of the tokens a mutation may replace: the start of each value or key. */
function tokenStarts(text: string): number[] {
  const out: number[] = [];
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') {
      inString = true;
      out.push(i);
    } else if (/[-0-9tfn[{]/.test(c) && (i === 0 || /[[{,:\s]/.test(text[i - 1]))) out.push(i);
  }
  return out;
}

/** The end of the JSON value (or key) starting at `at`. */
function tokenEnd(text: string, at: number): number {
  let depth = 0;
  let inString = false;
  for (let i = at; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') {
        inString = false;
        if (depth === 0) return i + 1;
      }
      continue;
    }
    if (c === '"') inString = true;
    else if (c === "[" || c === "{") depth++;
    else if (c === "]" || c === "}") {
      if (--depth <= 0) return i + 1;
    } else if (depth === 0 && /[,:\s]/.test(c)) return i;
  }
  return text.length;
}

/** One JSON-aware mutation: a value replaced, duplicated or removed, a structural byte inserted. */
function mutateJson(rng: Rng, bytes: Uint8Array): Uint8Array {
  if (bytes.length > 64 << 10) return mutateBytes(rng, bytes, 64); // a bomb already: not walked token by token
  const text = new TextDecoder().decode(bytes);
  const starts = tokenStarts(text);
  if (starts.length === 0) return mutateBytes(rng, bytes, 64);
  const at = rng.pick(starts);
  const end = tokenEnd(text, at);
  let out: string;
  switch (rng.int(5)) {
    case 0:
      out = text.slice(0, at) + rng.pick(HOSTILE_VALUES) + text.slice(end);
      break;
    case 1:
      out = text.slice(0, at) + bomb(rng) + text.slice(end);
      break;
    case 2: // the value twice (a duplicate key, or two values in a row)
      out = text.slice(0, end) + "," + text.slice(at, end) + text.slice(end);
      break;
    case 3:
      out = text.slice(0, at) + text.slice(end);
      break;
    default:
      out = text.slice(0, at) + rng.pick(["{", "}", "[", "]", ",", ":", '"', "\\", "\ufeff", "\u2028"]) +
        text.slice(at);
  }
  return enc.encode(out);
}

/** Checks what a reader accepted is what it promises: descriptors with digests and sizes, diff_ids as digests. */
function checkRead(kind: string, bytes: Uint8Array): void {
  switch (kind) {
    case "manifest": {
      const m = parseManifest(bytes, "fuzzed manifest");
      for (const d of [m.config, ...m.layers]) {
        if (!isDigest(d.digest) || !Number.isSafeInteger(d.size) || d.size < 0) {
          throw new Error(`manifest accepted with descriptor ${JSON.stringify(d)}`);
        }
      }
      return;
    }
    case "index": {
      const raw = parseJson(bytes, "fuzzed index") as Record<string, unknown>;
      if (typeof raw !== "object" || raw === null) return void parseIndex(bytes, "fuzzed index");
      if (documentKind(raw) !== "index") return void parseManifest(bytes, "fuzzed index");
      const index = parseIndex(bytes, "fuzzed index");
      for (const d of index.manifests) {
        if (!isDigest(d.digest)) throw new Error(`index accepted with descriptor ${JSON.stringify(d)}`);
      }
      return;
    }
    default: {
      const config = parseImageConfig(bytes, "fuzzed config");
      if (!config.rootfs.diff_ids.every((d) => isDigest(d))) {
        throw new Error(`config accepted with diff_ids ${JSON.stringify(config.rootfs.diff_ids)}`);
      }
    }
  }
}

/** Builds the valid documents under `dir` and returns the target. */
export async function documentTarget(dir: string): Promise<FuzzCase> {
  const layout = `${dir}/documents`;
  const a = await writeImage(layout, { tag: "a", layers: [{ tar: sampleTar("d1") }, { tar: sampleTar("d2") }] });
  const b = await writeImage(layout, {
    layers: [{ tar: sampleTar("d3"), compression: "zstd" }],
    docker: true,
    noIndexEntry: true,
    config: { history: [{ created_by: "fuzz \u00e9\u20ac" }], config: { Labels: { "a.b": "c" } } },
  });
  const indexDigest = await writeIndex(layout, "multi", [
    { image: a, platform: { os: "linux", architecture: "amd64" } },
    { image: b, platform: { os: "linux", architecture: "arm64", variant: "v8" } },
  ]);
  const artifact = enc.encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    artifactType: DELTA_ARTIFACT_TYPE,
    config: EMPTY_CONFIG,
    layers: [{
      mediaType: a.mediaType,
      digest: a.manifest,
      size: a.manifestSize,
      annotations: { [DeltaAnnotation.content]: DeltaContent.imageManifest },
    }],
    subject: { mediaType: a.mediaType, digest: a.manifest, size: a.manifestSize },
    annotations: { [DeltaAnnotation.target]: a.manifest },
  }));
  const blob = (digest: string) => Deno.readFileSync(`${layout}/blobs/sha256/${digest.slice(7)}`);
  const docs: [string, Uint8Array][] = [
    ["manifest", a.manifestBytes],
    ["manifest", b.manifestBytes],
    ["manifest", artifact],
    ["index", blob(indexDigest)],
    ["index", await Deno.readFile(`${layout}/index.json`)],
    ["config", a.configBytes],
    ["config", b.configBytes],
  ];
  for (const [kind, bytes] of docs) checkRead(kind, bytes); // the valid inputs are valid
  checkImageLayers(parseManifest(a.manifestBytes, "a"), parseImageConfig(a.configBytes, "a"), "a");

  return (rng) => {
    const [kind, valid] = rng.pick(docs);
    let bytes = valid;
    for (let i = 1 + rng.int(3); i > 0; i--) {
      bytes = rng.chance(0.6) ? mutateJson(rng, bytes) : mutateBytes(rng, bytes, 64);
    }
    if (rng.chance(0.05)) bytes = concat([bytes, new Uint8Array([rng.pick([0x00, 0x20, 0x7b, 0x5d])])]);
    checkRead(kind, bytes);
    return Promise.resolve();
  };
}
