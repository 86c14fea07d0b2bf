/**
 * src/util/json_reader.ts: the pull JSON reader accepts exactly what
 * JSON.parse accepts (checked on edge cases and seeded mutations of a
 * document), reads the same values, and says the same thing however the
 * document is cut into pieces; it passes over what it is not asked for, bounds
 * nesting (without recursion), strings and names, and shows little of the
 * input in its errors.
 */
import assert from "node:assert/strict";
import { FormatError } from "../src/errors.ts";
import { JsonReader } from "../src/util/json_reader.ts";
import { Rng } from "./helpers/fuzz.ts";

const enc = new TextEncoder();

/** The value the reader reads when asked for everything. */
function build(r: JsonReader): unknown {
  switch (r.peek()) {
    case "object": {
      const o: Record<string, unknown> = {};
      r.object((k) => void (o[k!] = build(r)));
      return o;
    }
    case "array": {
      const a: unknown[] = [];
      r.array(() => void a.push(build(r)));
      return a;
    }
    case "string":
      return r.string();
    case "number":
      return r.number();
    case "literal":
      return r.literal();
  }
}

/** JSON.parse's value with lone surrogates as U+FFFD (the reader decodes them so, as Go does). */
function wellFormed(v: unknown): unknown {
  if (typeof v === "string") return v.toWellFormed();
  if (Array.isArray(v)) return v.map(wellFormed);
  if (v !== null && typeof v === "object") {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k.toWellFormed(), wellFormed(x)]));
  }
  return v;
}

/** `bytes` cut into pieces: whole (one array, not an iterable), or of `size` bytes, or at random (empty ones too). */
function split(bytes: Uint8Array, how: number | "whole" | Rng): Uint8Array | Uint8Array[] {
  if (how === "whole") return bytes;
  const pieces: Uint8Array[] = [];
  for (let o = 0; o < bytes.length;) {
    const n = typeof how === "number" ? how : how.int(6);
    pieces.push(bytes.subarray(o, o + n));
    o += n;
  }
  return pieces;
}

/** The reader's verdict on `bytes` in pieces: the value read, or the error's message. */
function read(bytes: Uint8Array, how: number | "whole" | Rng): unknown {
  try {
    const r = new JsonReader(split(bytes, how), "doc");
    const value = build(r);
    r.end();
    return { value };
  } catch (e) {
    assert.ok(e instanceof FormatError, `untyped ${e}`);
    return e.message;
  }
}

/** Checks the reader against JSON.parse on `text`, whole and in each splitting; true when JSON.parse refuses it. */
function agree(text: string, splittings: (number | Rng)[]): boolean {
  let parsed: unknown;
  try {
    parsed = { value: wellFormed(JSON.parse(text)) };
  } catch {
    parsed = undefined;
  }
  const bytes = enc.encode(text);
  const whole = read(bytes, "whole");
  if (parsed === undefined) assert.equal(typeof whole, "string", `accepted what JSON.parse refuses: ${text}`);
  else assert.deepEqual(whole, parsed, text);
  for (const how of splittings) assert.deepEqual(read(bytes, how), whole, `${text} in pieces (${how})`);
  return parsed === undefined;
}

Deno.test("json reader: agrees with JSON.parse on hand-picked edge cases, whole and in pieces", () => {
  const cases = [
    "{}",
    "[]",
    ' [1, 2.5e-3, -0, 1E+2, "a\\u00e9\\n\\/", true, false, null, {"a": {"b": []}}] ',
    '"\\ud83d\\ude00 é \u{1F600}"',
    '"\\ud800"',
    '"\\ud800\\u0041"',
    '"\\udc00\\ud800x"',
    '"\\ud800\\n"',
    '{"a":1,"a":2}',
    '{"\\u0061":1,"b\\"":[{"":{}}]}',
    ...["01", "[1,]", '{"a":1,}', '"\\x"', '"a\u0001"', "-", "1.", "1e", "[", '{"a" 1}', "tru", "nulll"],
    ...["[1 2]", "  ", "", "1 2", "+1", ".5", '{"a"}', "[,1]", '"\\u12"', "\u00a0[]", '{"a":1 "b":2}'],
    ...['"\\', '"\\u', '"abc', "[1,2", '{"a":[true,fals', "-01", "1.e3", "1e+", "[1]]", "{,}", '{"a":}'],
  ];
  const rng = new Rng(7);
  for (const text of cases) agree(text, [1, 2, 3, rng, rng]);
});

Deno.test("json reader: agrees with JSON.parse on 20,000 seeded mutations of a document, in pieces too", () => {
  const base = JSON.stringify({
    schemaVersion: 2,
    "k\u00e9": "\\u0041\\ud83d\\ude00",
    manifests: [
      { mediaType: "x/y", digest: `sha256:${"a".repeat(64)}`, size: 12e3, annotations: { k: 'v\u00e9\n\t"\\/' } },
      [1, -2.5e10, 0.5, true, null, 'q"\\', "\u{1F600}"],
    ],
  });
  const rng = new Rng(0x15_0a);
  const alphabet = [...'{}[]",:0123456789-+.eE \\tnulrfasud\u00e9'];
  let refused = 0;
  for (let i = 0; i < 20_000; i++) {
    let text = base;
    for (let k = 1 + rng.int(3); k > 0; k--) {
      const at = rng.int(text.length);
      const c = rng.pick(alphabet);
      const op = rng.int(3);
      text = op === 0
        ? text.slice(0, at) + text.slice(at + 1)
        : op === 1
        ? text.slice(0, at) + c + text.slice(at)
        : text.slice(0, at) + c + text.slice(at + 1);
    }
    if (agree(text, [rng.pick([1, 2, 5, 64]), rng])) refused++;
  }
  assert.ok(refused > 5000 && refused < 19_000, `${refused} refused: both kinds of case were tried`);
});

Deno.test("json reader: skips what it is not asked for; errors show a short escaped excerpt; nesting is bounded", () => {
  const doc = enc.encode(`{"junk":[${"{},".repeat(1000)}{}],"keep":"yes","n":[1,2]}`);
  for (const input of [doc, split(doc, 3)]) {
    const r = new JsonReader(input, "listing");
    let keep: string | undefined;
    r.object((name) => {
      if (name === "keep") keep = r.string();
    });
    r.end();
    assert.equal(keep, "yes");
    assert.equal(r.offset, doc.length);
  }
  // A member name over 256 bytes (or the bound asked for) comes as undefined, and its value is skipped.
  const names: (string | undefined)[] = [];
  new JsonReader(enc.encode(`{"${"n".repeat(300)}":[1],"b":2}`), "d").object((n) => void names.push(n));
  new JsonReader(enc.encode(`{"abc":1,"ab":2}`), "d").object((n) => void names.push(n), 2);
  assert.deepEqual(names, [undefined, "b", undefined, "ab"]);
  const refused = (text: string | Uint8Array, message: RegExp, read = (r: JsonReader) => r.skip()) => {
    const bytes = typeof text === "string" ? enc.encode(text) : text;
    for (const input of [bytes, split(bytes, 1)]) {
      assert.throws(
        () => read(new JsonReader(input, "the page")),
        (e) => e instanceof FormatError && message.test(e.message),
      );
    }
  };
  refused(
    '{"a":\u0007TOP-SECRET-AND-MORE-THAN-24-BYTES}',
    /^the page is not valid JSON \(at byte 5: "\\x07TOP-SECRET-AND-MORE-THA"\.\.\.\)$/,
  );
  refused('{"a":"\\qTOP-SECRET"}', /^the page is not valid JSON \(at byte 7: "qTOP-SECRET"}"\)$/);
  refused('{"a":', /^the page is not valid JSON \(it ends too soon, after 5 bytes\)$/);
  refused("[".repeat(65) + "]".repeat(65), /^the page nests deeper than 64 levels \(at byte 64\)$/);
  new JsonReader(enc.encode("[".repeat(64) + "]".repeat(64)), "deep").skip();
  assert.throws(
    () => new JsonReader(enc.encode('{"a":[[[]]]}'), "d", { maxDepth: 3 }).object(() => {}),
    /^FormatError: d nests deeper than 3 levels \(at byte 7\)$/,
  );
  // Skipping does not recurse: a depth allowed is a depth walked, however deep.
  const deep = 1_000_000;
  new JsonReader(enc.encode("[".repeat(deep) + "]".repeat(deep)), "deep", { maxDepth: deep }).skip();
  // Strings returned are UTF-8 (a string split inside a character too); those passed over are not checked.
  refused(
    new Uint8Array([0x22, 0xff, 0x22]),
    /^the page is not valid UTF-8 \(a string at byte 0\)$/,
    (r) => r.string(),
  );
  const e9 = enc.encode('["\u00e9\u00e9\u00e9"]');
  for (const size of [1, 2, 3]) assert.deepEqual(build(new JsonReader(split(e9, size), "d")), ["\u00e9\u00e9\u00e9"]);
  new JsonReader(new Uint8Array([0x22, 0xff, 0x22]), "d").skip();
  // Values of the wrong kind are named as such, not as invalid JSON.
  refused('"1"', /^the page has a string where an integer belongs \(at byte 0\)$/, (r) => r.integer());
  refused("[]", /^the page has an array where an object belongs \(at byte 0\)$/, (r) => r.object(() => {}));
});

Deno.test("json reader: strings and numbers are bounded as asked; integers, null, repeated names", () => {
  const one = (text: string) => new JsonReader(enc.encode(text), "d");
  // A string's bound is its bytes once decoded, whatever its escapes; longer ones are passed over whole.
  assert.equal(one(`"${"\\u0041".repeat(10)}"`).string(10), "A".repeat(10));
  assert.equal(one(`"${"\\u0041".repeat(11)}"`).string(10), undefined);
  assert.equal(one('"\u00e9\u00e9"').string(4), "\u00e9\u00e9");
  assert.equal(one('"\u00e9\u00e9"').string(3), undefined);
  assert.equal(one('"\\ud83d\\ude00"').string(4), "\u{1F600}");
  const long = enc.encode(`["${"x".repeat(1000)}", "${"y".repeat(50)}"]`);
  for (const input of [long, split(long, 7)]) {
    const r = new JsonReader(input, "d");
    const got: (string | undefined)[] = [];
    r.array(() => void got.push(r.string(50)));
    r.end();
    assert.deepEqual(got, [undefined, "y".repeat(50)]);
  }
  // Numbers read as values are at most 64 characters; skipped ones may be longer.
  assert.equal(one(`1${"0".repeat(63)}`).number(), 1e63);
  assert.throws(() => one(`1${"0".repeat(64)}`).number(), /^FormatError: d has a number longer than 64 characters/);
  one(`1${"0".repeat(1000)}`).skip();
  assert.equal(one(" -12 ").integer(), -12);
  assert.throws(() => one("1.5").integer(), /^FormatError: d: expected an integer, not 1\.5 at byte 3$/);
  assert.throws(() => one("9007199254740993").integer(), /integer 9007199254740993 is out of range/);
  const nulls = one("[null, 1]");
  const seen: unknown[] = [];
  nulls.array(() => void seen.push(nulls.null() ? null : nulls.integer()));
  assert.deepEqual(seen, [null, 1]);
  // Repeated member names, refused when asked (in the objects walked; the reader compares names decoded).
  const twice = enc.encode('{"a":1,"\\u0061":2}');
  assert.deepEqual(build(new JsonReader(twice, "d")), { a: 2 });
  assert.throws(
    () => build(new JsonReader(twice, "d", { uniqueKeys: true })),
    /^FormatError: d has the member "a" twice \(at byte 7\)$/,
  );
});
