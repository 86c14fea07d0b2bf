/**
 * src/util/json_scan.ts: the selective JSON reader accepts exactly what
 * JSON.parse accepts (checked on seeded mutations of a document), reads the
 * same values, passes over what it is not asked for, and bounds nesting.
 */
import assert from "node:assert/strict";
import { FormatError } from "../src/errors.ts";
import { JsonScanner } from "../src/util/json_scan.ts";
import { Rng } from "./helpers/fuzz.ts";

const enc = new TextEncoder();

/** The value the scanner reads when asked for everything. */
function build(s: JsonScanner): unknown {
  switch (s.peek()) {
    case "object": {
      const o: Record<string, unknown> = {};
      s.object((k) => void (o[k!] = build(s)));
      return o;
    }
    case "array": {
      const a: unknown[] = [];
      s.array(() => void a.push(build(s)));
      return a;
    }
    case "string":
      return s.string();
    case "number":
      return s.number();
    case "literal":
      return s.literal();
  }
}

/** JSON.parse's verdict and the scanner's, on `text`: the value read, or the error's class. */
function both(text: string): { parsed: unknown; scanned: unknown } {
  let parsed: unknown;
  let scanned: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = "refused";
  }
  try {
    const s = new JsonScanner(enc.encode(text), "doc");
    scanned = build(s);
    s.end();
  } catch (e) {
    assert.ok(e instanceof FormatError, `untyped ${e} for ${JSON.stringify(text)}`);
    scanned = "refused";
  }
  return { parsed, scanned };
}

Deno.test("json scan: agrees with JSON.parse on hand-picked edge cases", () => {
  const cases = [
    "{}",
    "[]",
    ' [1, 2.5e-3, -0, 1E+2, "a\\u00e9\\n\\/", true, false, null, {"a": {"b": []}}] ',
    '"\\ud83d\\ude00 é"',
    '{"a":1,"a":2}',
    ...["01", "[1,]", '{"a":1,}', '"\\x"', '"a\u0001"', "-", "1.", "1e", "[", '{"a" 1}', "tru", "nulll"],
    ...["[1 2]", "  ", "", "1 2", "+1", ".5", '{"a"}', "[,1]", '"\\u12"', "\u00a0[]"],
  ];
  for (const text of cases) {
    const { parsed, scanned } = both(text);
    assert.deepEqual(scanned, parsed, JSON.stringify(text));
  }
});

Deno.test("json scan: agrees with JSON.parse on 20,000 seeded mutations of a document", () => {
  const base = JSON.stringify({
    schemaVersion: 2,
    "k\u00e9": "\\u0041",
    manifests: [
      { mediaType: "x/y", digest: `sha256:${"a".repeat(64)}`, size: 12e3, annotations: { k: 'v\u00e9\n\t"\\/' } },
      [1, -2.5e10, 0.5, true, null, 'q"\\'],
    ],
  });
  const rng = new Rng(0x15_0a);
  const alphabet = '{}[]",:0123456789-+.eE \\tnulrfasu\u00e9';
  let refused = 0;
  for (let i = 0; i < 20_000; i++) {
    let text = base;
    for (let k = 1 + rng.int(3); k > 0; k--) {
      const at = rng.int(text.length);
      const c = rng.pick([...alphabet]);
      const op = rng.int(3);
      text = op === 0
        ? text.slice(0, at) + text.slice(at + 1)
        : op === 1
        ? text.slice(0, at) + c + text.slice(at)
        : text.slice(0, at) + c + text.slice(at + 1);
    }
    const { parsed, scanned } = both(text);
    assert.deepEqual(scanned, parsed, JSON.stringify(text));
    if (parsed === "refused") refused++;
  }
  assert.ok(refused > 5000 && refused < 19_000, `${refused} refused: both kinds of case were tried`);
});

Deno.test("json scan: skips what it is not asked for; errors show a short escaped excerpt; nesting is bounded", () => {
  const doc = enc.encode(`{"junk":[${"{},".repeat(1000)}{}],"keep":"yes","n":[1,2]}`);
  const s = new JsonScanner(doc, "listing");
  let keep: string | undefined;
  s.object((name) => {
    if (name === "keep") keep = s.string();
  });
  s.end();
  assert.equal(keep, "yes");
  assert.equal(s.position, doc.length);
  // A string longer than asked for is passed over.
  const long = new JsonScanner(enc.encode(`"${"x".repeat(100)}"`), "d");
  assert.equal(long.string(50), undefined);
  long.end();
  // A member name over 256 bytes comes as undefined, and its value is skipped.
  const names: (string | undefined)[] = [];
  new JsonScanner(enc.encode(`{"${"n".repeat(300)}":[1],"b":2}`), "d").object((n) => void names.push(n));
  assert.deepEqual(names, [undefined, "b"]);
  assert.throws(
    () => new JsonScanner(enc.encode('{"a":\u0007TOP-SECRET-AND-MORE-THAN-24-BYTES}'), "the page").skip(),
    (e) =>
      e instanceof FormatError &&
      e.message === 'the page is not valid JSON (at byte 5: "\\x07TOP-SECRET-AND-MORE-THA"...)',
  );
  assert.throws(
    () => new JsonScanner(enc.encode('{"a":'), "the page").skip(),
    /^FormatError: the page is not valid JSON \(it ends too soon, after 5 bytes\)$/,
  );
  assert.throws(
    () => new JsonScanner(enc.encode("[".repeat(65) + "]".repeat(65)), "deep").skip(),
    /deep nests deeper than 64 levels/,
  );
  new JsonScanner(enc.encode("[".repeat(64) + "]".repeat(64)), "deep").skip();
  assert.throws(() => new JsonScanner(new Uint8Array([0x22, 0xff, 0x22]), "d").string(), /d is not valid UTF-8/);
});
