import assert from "node:assert/strict";
import { decodeName, encodeName, type TarEntry } from "../src/tar/header.ts";
import { paxTimeExact } from "../src/tar/pax.ts";
import { parseHeaderGroup } from "../src/tar/header_group.ts";
import { cleanEntryPath, cleanRootedPath } from "../src/tar/path.ts";
import { type TarSink, TarSplitter } from "../src/tar/splitter.ts";
import { FormatError, UnsafePathError } from "../src/errors.ts";
import { buildTar, headerBlock, type TarSpec } from "./helpers/tar.ts";

/** Splits a tar in chunks of `chunk` bytes; returns entries and the bytes each part received. */
async function split(tar: Uint8Array, chunk: number) {
  const entries: TarEntry[] = [];
  const parts: Uint8Array[] = [];
  const contents: number[] = [];
  const sink: TarSink = {
    entry(e, group) {
      entries.push(e);
      parts.push(group.slice());
      contents.push(0);
    },
    content(c) {
      parts.push(c.slice());
      contents[contents.length - 1] += c.length;
    },
    endContent() {},
    padding(b) {
      parts.push(b.slice());
    },
    trailer(b) {
      parts.push(b.slice());
    },
  };
  const s = new TarSplitter(sink);
  for (let o = 0; o < tar.length; o += chunk) await s.write(tar.subarray(o, o + chunk));
  s.close();
  const joined = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    joined.set(p, o);
    o += p.length;
  }
  return { entries, joined, contents };
}

const varied: TarSpec[] = [
  { path: "dir/", type: "dir" },
  { path: "dir/a.txt", content: "hello\n" },
  { path: "dir/" + "x".repeat(150), content: "pax long name" },
  { path: "gnu/" + "y".repeat(140), content: "gnu long name", longNames: "gnu" },
  { path: "link", type: "symlink", linkname: "/absolute/target/is/fine/for/symlinks" },
  { path: "hard", type: "hardlink", linkname: "dir/a.txt" },
  { path: "exactly512", content: new Uint8Array(512).fill(7) },
  { path: "xattr", content: "x", pax: { "SCHILY.xattr.user.test": "value" } },
  { path: "ünïcödé/名前", content: "utf-8 names" },
];

Deno.test("splitter hands every byte to the sink exactly once, whatever the chunk size", async () => {
  const tar = buildTar(varied, { endBlocks: 20 });
  for (const chunk of [1, 7, 511, 512, 513, 4096, tar.length]) {
    const { entries, joined, contents } = await split(tar, chunk);
    assert.deepEqual(joined, tar, `chunk ${chunk}`);
    assert.equal(entries.length, varied.length);
    assert.deepEqual(contents, entries.map((e) => e.size));
  }
});

Deno.test("header groups resolve PAX and GNU long names, links, xattrs", async () => {
  const { entries } = await split(buildTar(varied), 4096);
  assert.deepEqual(entries.map((e) => e.path), [
    "dir",
    "dir/a.txt",
    "dir/" + "x".repeat(150),
    "gnu/" + "y".repeat(140),
    "link",
    "hard",
    "exactly512",
    "xattr",
    "ünïcödé/名前",
  ]);
  assert.deepEqual(entries.map((e) => e.kind), [
    "dir",
    "file",
    "file",
    "file",
    "symlink",
    "hardlink",
    "file",
    "file",
    "file",
  ]);
  assert.equal(entries[4].linkname, "/absolute/target/is/fine/for/symlinks");
  assert.equal(entries[5].linkname, "dir/a.txt");
  assert.equal(new TextDecoder().decode(entries[7].xattrs["user.test"]), "value");
  assert.equal(entries[1].mode, 0o644);
  assert.equal(entries[0].mode, 0o755);
});

Deno.test("archives written by GNU tar round-trip in every format", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/src/${"long-directory-name/".repeat(8)}`, { recursive: true });
    await Deno.writeTextFile(`${dir}/src/${"long-directory-name/".repeat(8)}file`, "deep\n");
    await Deno.writeTextFile(`${dir}/src/a`, "a".repeat(10000));
    await Deno.symlink("a", `${dir}/src/sym`);
    await Deno.link(`${dir}/src/a`, `${dir}/src/hard`);
    for (const format of ["gnu", "posix", "ustar"]) {
      const args = ["-C", `${dir}/src`, `--format=${format}`, "-cf", "-", "."];
      const out = await new Deno.Command("tar", { args, stdout: "piped", stderr: "piped" }).output();
      if (format === "ustar" && !out.success) continue; // ustar cannot hold the long name
      assert.ok(out.success, new TextDecoder().decode(out.stderr));
      const { joined, entries } = await split(out.stdout, 1000);
      assert.deepEqual(joined, out.stdout, format);
      assert.ok(entries.some((e) => e.path.endsWith("long-directory-name/file")), format);
      assert.ok(entries.some((e) => e.kind === "hardlink"), format);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("unsafe entry names are refused", async () => {
  for (const path of ["../escape", "a/../../b", "ok/..", "/../x"]) {
    const tar = buildTar([{ path, content: "x" }]);
    await assert.rejects(split(tar, 512), UnsafePathError, path);
  }
  const hard = buildTar([{ path: "h", type: "hardlink", linkname: "../../etc/shadow" }]);
  await assert.rejects(split(hard, 512), UnsafePathError);
});

Deno.test("corrupt and truncated tars are format errors", async () => {
  const tar = buildTar([{ path: "a", content: "12345" }]);
  const bad = tar.slice();
  bad[10] ^= 0xff; // inside the name: checksum no longer matches
  await assert.rejects(split(bad, 512), FormatError, "checksum");
  await assert.rejects(split(tar.subarray(0, 600), 512), FormatError, "ends in the middle");
});

Deno.test("cleanEntryPath normalises harmless forms", () => {
  assert.equal(cleanEntryPath("./usr//bin/./sh"), "usr/bin/sh");
  assert.equal(cleanEntryPath("usr/lib/"), "usr/lib");
  assert.equal(cleanEntryPath("./"), "");
  // Absolute names are taken from the layer's root, as container engines and composefs-rs take them.
  assert.equal(cleanEntryPath("/etc/passwd"), "etc/passwd");
  assert.equal(cleanEntryPath("//etc//x/"), "etc/x");
  assert.equal(cleanEntryPath("/"), "");
});

Deno.test("cleanRootedPath never leaves the root", () => {
  assert.equal(cleanRootedPath("../../etc/passwd"), "etc/passwd");
  assert.equal(cleanRootedPath("/a/b/../c"), "a/c");
  assert.equal(cleanRootedPath("a/../../.."), "");
  assert.equal(cleanRootedPath("./x/./y/"), "x/y");
});

Deno.test("a PAX global header is checked and then ignored, as Go's archive/tar and composefs-rs ignore it", () => {
  const enc = new TextEncoder();
  const data = enc.encode("15 uname=alice\n");
  const g = new Uint8Array(1024);
  g.set(headerBlock({ name: "global", typeflag: "g", size: data.length }));
  g.set(data, 512);
  const globals = new Map<string, Uint8Array>();
  const ge = parseHeaderGroup(g, globals);
  assert.equal(ge.kind, "pax-global");
  assert.equal(ge.size, 0);
  const e = parseHeaderGroup(headerBlock({ name: "f", typeflag: "0", size: 0 }), globals);
  assert.equal(e.uname, "root", "the entry's own uname, not the global one");
  const bad = g.slice();
  bad.set(enc.encode("99 uname=alice\n"), 512);
  assert.throws(() => parseHeaderGroup(bad, new Map()), FormatError);
});

Deno.test("names as bytes: decodeName and encodeName give back every byte string, UTF-8 or not", () => {
  const cases = [
    Uint8Array.of(0x63, 0x61, 0x66, 0xe9), // latin1 "café"
    new TextEncoder().encode("caf\u00e9 \u{1f600}"), // valid UTF-8, an astral character too
    Uint8Array.of(0xff, 0xfe, 0x2f, 0x80),
    Uint8Array.of(0xed, 0xa0, 0x80), // an encoded surrogate: not UTF-8
    Uint8Array.of(0xe9, 0x80, 0x41), // a sequence cut short
    Uint8Array.of(0xc0, 0xaf), // an overlong "/"
  ];
  for (const bytes of cases) assert.deepEqual(encodeName(decodeName(bytes)), bytes, [...bytes].join(","));
  assert.equal(decodeName(Uint8Array.of(0x61, 0xe9)), "a\udce9", "a byte outside UTF-8 is a lone surrogate");
  assert.notEqual(decodeName(Uint8Array.of(0xe9)), decodeName(new TextEncoder().encode("\u00e9")));
});

Deno.test("a PAX mtime with a fraction is kept exactly: nanoseconds, later digits dropped, negative times floored", () => {
  const exact = (v: string) => paxTimeExact(new Map([["mtime", new TextEncoder().encode(v)]]), "mtime");
  assert.deepEqual(exact("1700000000.123456789"), { sec: 1700000000, nsec: 123456789 });
  assert.deepEqual(exact("1700000000.1234567899"), { sec: 1700000000, nsec: 123456789 });
  assert.deepEqual(exact("1700000001.5"), { sec: 1700000001, nsec: 500000000 });
  assert.deepEqual(exact("-1.25"), { sec: -2, nsec: 750000000 });
  assert.deepEqual(exact("-3.0"), { sec: -3, nsec: 0 });
  assert.equal(exact("1700000000"), undefined);
  assert.throws(() => exact("1.x"), FormatError);
});
