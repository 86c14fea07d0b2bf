/**
 * composefs dumpfiles: the vectors' dumps round-trip (parse, format, parse) and
 * format back to the same bytes; escapes cover every byte; a malformed line is a
 * FormatError that names its line number and field; a dump whose lines do not fit
 * together (child before parent, a path twice, a bad hardlink) is one too.
 */
import assert from "node:assert/strict";
import { escape, formatDumpfile, parseDumpfile, readDumpfile, unescape } from "../src/composefs/dumpfile.ts";
import { imageDump, writeErofs } from "../src/composefs/erofs_writer.ts";
import { DumpTreeBuilder, treeFromDump } from "../src/composefs/tree_dump.ts";
import { FormatError } from "../src/errors.ts";
import { vectorNames, VECTORS } from "./helpers/composefs.ts";

const ROOT = "/ 4096 40755 2 0 0 0 0.0 - - -";

for (const name of vectorNames()) {
  Deno.test(`dumpfile: ${name}.dump round-trips through parse and format`, () => {
    const text = Deno.readFileSync(`${VECTORS}${name}.dump`);
    const entries = [...parseDumpfile(text)];
    const formatted = formatDumpfile(entries);
    assert.equal(formatted, new TextDecoder().decode(text), "formatting gives back the same bytes");
    assert.deepEqual([...parseDumpfile(formatted)], entries);
    treeFromDump(entries); // and the lines fit together
  });
}

/** The vectors whose dumps `composefs-info dump` printed (the others are composefs-rs's hand-written ones). */
const C_DUMPS = ["basic", "corpus", "edits", "fallback", "features", "links", "whiteouts"];

for (const name of vectorNames()) {
  Deno.test(`dumpfile: ${name}: the image's dump ${C_DUMPS.includes(name) ? "is composefs-info's, byte for byte" : "describes the same image"}`, () => {
    const text = Deno.readTextFileSync(`${VECTORS}${name}.dump`);
    const tree = treeFromDump(parseDumpfile(text));
    const dump = formatDumpfile(imageDump(tree));
    if (C_DUMPS.includes(name)) assert.equal(dump, text);
    assert.deepEqual(writeErofs(treeFromDump(parseDumpfile(dump))), writeErofs(tree));
  });
}

Deno.test("dumpfile: escape and unescape round-trip every byte; - and = are escaped where they must be", () => {
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  const field = escape(all);
  assert.match(field, /^[\x21-\x7e]+$/, "only printable ASCII, no spaces");
  assert.deepEqual(unescape(new TextEncoder().encode(field), "test"), all);
  assert.equal(escape(new TextEncoder().encode("a b\\c\nd\re\tf=g")), "a\\x20b\\\\c\\nd\\re\\tf=g");
  assert.equal(escape(new TextEncoder().encode("k=v"), "xattr"), "k\\x3dv");
  assert.equal(escape(new TextEncoder().encode("-")), "\\x2d", "a lone dash would read as an absent field");
  assert.equal(escape(new TextEncoder().encode("-"), "xattr"), "-");
  assert.equal(escape(new TextEncoder().encode("--")), "--");
  // Upper-case hex is accepted too.
  assert.deepEqual(unescape(new TextEncoder().encode("\\xFF\\xfe"), "test"), Uint8Array.of(0xff, 0xfe));
});

Deno.test("dumpfile: a hardlink, inline content, a digest and xattrs parse to their fields", () => {
  const digest = "ab".repeat(32);
  const [, file, link] = parseDumpfile(
    [
      ROOT,
      `/f\\x20x 5000 100644 2 1 2 0 -5.000000007 ab/${"ab".repeat(31)} - ${digest} user.a\\x3db=\\x00 trusted.t=`,
      "/l 5000 @100644 2 1 2 0 1.2 /f\\x20x - -",
    ].join("\n"),
  );
  assert.equal(new TextDecoder().decode(file.path), "/f x");
  assert.deepEqual(file.mtime, { sec: -5, nsec: 7 });
  assert.equal(file.digest?.length, 32);
  assert.deepEqual(file.xattrs.map((x) => new TextDecoder().decode(x.name)), ["user.a=b", "trusted.t"]);
  assert.deepEqual(file.xattrs[0].value, Uint8Array.of(0));
  assert.deepEqual(file.xattrs[1].value, new Uint8Array(0));
  assert.equal(link.hardlink, true);
  assert.equal(new TextDecoder().decode(link.payload!), "/f x");
  const root = treeFromDump([...parseDumpfile([ROOT, formatDumpfile([file, link])].join("\n"))]);
  const enc = new TextEncoder();
  assert.equal(root.child(0, enc.encode("f x")), root.child(0, enc.encode("l")), "a hardlink is the same inode");
});

/** Each malformed dump, the line it is at and what the message must say. */
const MALFORMED: [string, string[], RegExp][] = [
  ["bad escape", [ROOT, "/a\\q 0 100644 1 0 0 0 0.0 - - -"], /line 2, field PATH: bad escape "\\\\q"/],
  ["short \\x escape", [ROOT, "/a 1 100644 1 0 0 0 0.0 - \\x4 -"], /line 2, field CONTENT: bad escape/],
  [
    "bad mode (not octal)",
    [ROOT, "/a 0 100648 1 0 0 0 0.0 - - -"],
    /line 2, field MODE: "100648" is not an octal mode/,
  ],
  ["bad mode (no file type)", [ROOT, "/a 0 170644 1 0 0 0 0.0 - - -"], /line 2, field MODE: .*no valid file type/],
  [
    "hardlinked directory",
    [ROOT, "/a 0 @40755 1 0 0 0 0.0 / - -"],
    /line 2, field MODE: a directory cannot be a hardlink/,
  ],
  [
    "missing field",
    [ROOT, "/a 0 100644 1 0 0 0 0.0 - -"],
    /line 2: 10 fields, expected at least 11 \(missing DIGEST\)/,
  ],
  ["bad number", [ROOT, "/a 0x1 100644 1 0 0 0 0.0 - - -"], /line 2, field SIZE: "0x1" is not a decimal number/],
  ["bad mtime", [ROOT, "/a 0 100644 1 0 0 0 1.1234567890 - - -"], /line 2, field MTIME: .*SECONDS.NANOSECONDS/],
  ["bad digest", [ROOT, `/a 9 100644 1 0 0 0 0.0 - - ${"g".repeat(64)}`], /line 2, field DIGEST: .*64 hex digits/],
  ["xattr without =", [ROOT, "/a 0 100644 1 0 0 0 0.0 - - - user.x"], /line 2, field XATTR 1: no = between/],
  ["relative path", [ROOT, "a 0 100644 1 0 0 0 0.0 - - -"], /line 2, field PATH: not an absolute path/],
  ["dot-dot path", [ROOT, "/a/../b 0 100644 1 0 0 0 0.0 - - -"], /line 2, field PATH: \. or \.\. path component/],
  ["empty component", [ROOT, "/a//b 0 100644 1 0 0 0 0.0 - - -"], /line 2, field PATH: empty path component/],
  [
    "child before parent",
    [ROOT, "/a/b 0 100644 1 0 0 0 0.0 - - -"],
    /line 2: the parent of "\/a\/b" is not listed before it/,
  ],
  [
    "parent not a directory",
    [ROOT, "/a 0 100644 1 0 0 0 0.0 - - -", "/a/b 0 100644 1 0 0 0 0.0 - - -"],
    /line 3: the parent of "\/a\/b" is not a directory/,
  ],
  [
    "duplicate path",
    [ROOT, "/a 0 100644 1 0 0 0 0.0 - - -", "/a 0 100644 1 0 0 0 0.0 - - -"],
    /line 3: path "\/a" appears twice/,
  ],
  ["duplicate root", [ROOT, ROOT], /line 2: path "\/" appears twice/],
  ["root not first", ["/a 0 100644 1 0 0 0 0.0 - - -"], /line 1: the first entry must be the root directory/],
  [
    "hardlink to nothing",
    [ROOT, "/l 0 @100644 1 0 0 0 0.0 /x - -"],
    /line 2, field PAYLOAD: hardlink target "\/x" is not listed/,
  ],
  [
    "hardlink to a directory",
    [ROOT, "/d 0 40755 2 0 0 0 0.0 - - -", "/l 0 @100644 1 0 0 0 0.0 /d - -"],
    /line 3, field PAYLOAD: hardlink target "\/d" is a directory/,
  ],
  [
    "content size mismatch",
    [ROOT, "/a 5 100644 1 0 0 0 0.0 - abc -"],
    /line 2, field CONTENT: 3 bytes, but SIZE says 5/,
  ],
  ["content on a directory", [ROOT, "/d 0 40755 2 0 0 0 0.0 - abc -"], /line 2, field CONTENT: only regular files/],
  [
    "symlink without target",
    [ROOT, "/s 0 120777 1 0 0 0 0.0 - - -"],
    /line 2, field PAYLOAD: a symlink needs a target/,
  ],
];

for (const [what, lines, message] of MALFORMED) {
  Deno.test(`dumpfile: ${what} is a FormatError with its line number`, () => {
    assert.throws(
      () => treeFromDump(parseDumpfile(lines.join("\n") + "\n")),
      (e) => {
        assert.ok(e instanceof FormatError, `a FormatError, not ${e}`);
        assert.match(e.message, message);
        assert.ok(!e.message.includes("\n"), "one line");
        return true;
      },
    );
  });
}

Deno.test("dumpfile: readDumpfile parses a stream in any chunking like parseDumpfile", async () => {
  const text = Deno.readFileSync(`${VECTORS}features.dump`);
  const want = [...parseDumpfile(text)];
  for (const chunk of [1, 7, 4096, text.length]) {
    const stream = ReadableStream.from((function* () {
      for (let o = 0; o < text.length; o += chunk) yield text.slice(o, o + chunk);
    })());
    const builder = new DumpTreeBuilder();
    const got = [];
    for await (const e of readDumpfile(stream)) {
      got.push(e);
      builder.add(e);
    }
    assert.deepEqual(got, want, `chunks of ${chunk}`);
    assert.deepEqual(writeErofs(builder.finish()), writeErofs(treeFromDump(want)));
  }
  // No final newline; and a line past the limit is refused before it is whole.
  const last = await Array.fromAsync(readDumpfile(ReadableStream.from([new TextEncoder().encode(ROOT)])));
  assert.equal(last.length, 1);
  const endless = ReadableStream.from((function* () {
    for (let i = 0; i < 1000; i++) yield new Uint8Array(64 * 1024).fill(0x61);
  })());
  await assert.rejects(Array.fromAsync(readDumpfile(endless)), /line 1: longer than \d+ bytes/);
});

Deno.test("dumpfile: an empty dump is a FormatError", () => {
  assert.throws(() => treeFromDump(parseDumpfile("")), FormatError);
});
