/**
 * Strict parsing of tar numbers and PAX records (as Go's archive/tar does), and
 * the structural guarantees of the tar readers: hostile sizes end in a
 * FormatError naming the entry and field, never in a loop, a huge allocation or a
 * foreign error. Parsers that might loop run in a worker under a time limit, so
 * that a regression fails the test instead of hanging it.
 */
import assert from "node:assert/strict";
import { FormatError } from "../src/errors.ts";
import { checkDescriptor } from "../src/oci/documents.ts";
import { readFooter } from "../src/repo/layer_record.ts";
import { MAX_HEADER_GROUP, type TarEntry } from "../src/tar/header.ts";
import { parseHeaderGroup } from "../src/tar/header_group.ts";
import { concat } from "../src/util/streams.ts";
import { writeVarint } from "../src/util/varint.ts";
import { deltaship, deltashipCommand, tempDir } from "./helpers/cli.ts";
import { compress, packArchive, sampleTar, writeImage } from "./helpers/oci.ts";
import { Prober, type ProbeResult, type ProbeTask } from "./helpers/probe.ts";
import { base256, buildTar, findHeader, headerBlock, patchField, paxRecords, type TarSpec } from "./helpers/tar.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Runs a task in a worker; fails (instead of hanging) when it takes over `ms`. */
async function bounded(task: ProbeTask, ms = 10_000): Promise<ProbeResult> {
  const prober = new Prober();
  try {
    return await prober.run(task, ms);
  } finally {
    prober.close();
  }
}

/** Asserts that a probe failed with a FormatError whose message matches `message`. */
function assertFormatError(r: ProbeResult, message: RegExp): void {
  assert.ok(!r.ok, `expected a FormatError, got success: ${JSON.stringify(r.ok && r.value)}`);
  assert.equal(r.name, "FormatError", `${r.name}: ${r.message}\n${r.stack}`);
  assert.match(r.message, message);
}

/** An extension header (`x`, `L` or `K`) whose size field says -512 in base-256, before a valid entry. */
function negativeExtension(typeflag: string): Uint8Array {
  const ext = headerBlock({
    name: typeflag === "x" ? "PaxHeaders/f" : "././@LongLink",
    typeflag,
    gnu: typeflag !== "x",
  });
  patchField(ext, 0, "size", base256(-512, 12));
  return concat([ext, buildTar([{ path: "f", content: "data" }])]);
}

/** The header group of the entry after a leading directory: `etc/` at 0, then `etc/x` from byte 512. */
function paxEntry(pax: Record<string, string>, content = "hello"): { tar: Uint8Array; parse(): TarEntry } {
  const tar = buildTar([{ path: "etc/", type: "dir" }, { path: "etc/x", content, pax }]);
  const end = findHeader(tar, "etc/x") + 512;
  return { tar, parse: () => parseHeaderGroup(tar.subarray(512, end), new Map(), 512) };
}

/** A one-entry tar whose header field `field` holds `value`; parsed as a header group. */
function withField(field: Parameters<typeof patchField>[2], value: Uint8Array | string): TarEntry {
  const tar = buildTar([{ path: "etc/x", content: "" }]);
  patchField(tar, 0, field, value);
  return parseHeaderGroup(tar.subarray(0, 512), new Map(), 0);
}

// ---- numeric header fields ----

Deno.test("strict tar: a negative base-256 size on an x, L or K header is a FormatError, never a loop", async () => {
  for (const typeflag of ["x", "L", "K"]) {
    for (const chunk of [undefined, 1, 700]) {
      const r = await bounded({ kind: "split", tar: negativeExtension(typeflag), chunk });
      assertFormatError(
        r,
        new RegExp(`^tar entry at byte 0: '${typeflag}' extension header size field is negative \\(-512\\)$`),
      );
    }
  }
});

Deno.test("strict tar: base-256 numbers must be safe integers; sizes, ids, modes and devices not negative", () => {
  assert.throws(
    () => withField("size", base256(2 ** 53, 12)),
    /tar entry "etc\/x" \(at byte 0\): header size field \(base-256\) is out of range/,
  );
  assert.throws(() => withField("size", base256(-(2n ** 94n), 12)), /size field \(base-256\) is out of range/);
  assert.throws(() => withField("uid", base256(2n ** 62n, 8)), /uid field \(base-256\) is out of range/);
  for (const field of ["size", "mode", "uid", "gid", "devmajor", "devminor"] as const) {
    const width = field === "size" ? 12 : 8;
    assert.throws(
      () => withField(field, base256(-1, width)),
      (e: Error) => e instanceof FormatError && e.message.endsWith(`header ${field} field is negative (-1)`),
      field,
    );
  }
  // Valid base-256 values are taken, a negative mtime included (a date before 1970).
  assert.equal(withField("uid", base256(2 ** 40, 8)).uid, 2 ** 40);
  assert.equal(withField("mtime", base256(-86400, 12)).mtime, -86400);
  assert.equal(withField("size", base256(2 ** 33, 12)).size, 2 ** 33);
});

Deno.test("strict tar: octal fields are trimmed of spaces and NULs, then digits only", () => {
  for (
    const [text, mode] of [["0000644\0", 0o644], ["  644 \0", 0o644], ["644", 0o644], ["", 0], ["\0\0\0\0\0\0\0\0", 0]]
  ) {
    assert.equal(withField("mode", text as string).mode, mode, JSON.stringify(text));
  }
  // As Go reads a field: at a NUL inside it, the number ends.
  assert.equal(withField("mode", "777\0junk").mode, 0o777);
  for (const text of ["64x\0", "6 4\0", "-1\0", "+7\0", "0x1f\0", "8\0", "1e3\0"]) {
    assert.throws(
      () => withField("mode", text),
      (e: Error) =>
        e instanceof FormatError &&
        e.message.startsWith(
          `tar entry "etc/x" (at byte 0): header mode field ${JSON.stringify(text.padEnd(8, "\0"))}`,
        ) &&
        e.message.endsWith("is not an octal number"),
      JSON.stringify(text),
    );
  }
  assert.throws(() => withField("size", "12 34\0"), /header size field "12 34\\u0000.*" is not an octal number/);
  // A checksum that is not octal: most likely not a tar at all.
  const png = buildTar([{ path: "etc/x", content: "" }]);
  png.set(enc.encode("PNG\r\n\0\0\0"), 148);
  assert.throws(
    () => parseHeaderGroup(png.subarray(0, 512), new Map(), 0),
    /^FormatError: tar entry at byte 0: header checksum field .* is not an octal number \(corrupt or not a tar archive\)$/,
  );
});

// ---- PAX records ----

Deno.test("strict tar: PAX size, uid and gid are plain decimal numbers; anything else names the field", () => {
  for (const field of ["size", "uid", "gid"]) {
    for (const v of ["0x10", "1e2", "0.5", "-1", " 5", "+5", "5 ", "-1536", "1_000"]) {
      assert.throws(
        () => paxEntry({ [field]: v }).parse(),
        (e: Error) =>
          e instanceof FormatError &&
          e.message === `tar entry "etc/x" (at byte 512): PAX ${field} ${JSON.stringify(v)} is not a decimal number`,
        `${field}=${JSON.stringify(v)}`,
      );
    }
    assert.throws(
      () => paxEntry({ [field]: "99999999999999999" }).parse(),
      new RegExp(`PAX ${field} 99999999999999999 is out of range`),
    );
  }
  // Untrusted text is escaped, C1 controls (an 8-bit CSI here) and bidi overrides included.
  const hostile = buildTar([{ path: "e\u009b31m\u202ex", content: "", pax: { size: "+1" } }]);
  assert.throws(
    () => parseHeaderGroup(hostile.subarray(0, 1536), new Map(), 0),
    (e: Error) => e.message.startsWith(String.raw`tar entry "e\u009b31m\u202ex" (at byte 0): PAX size "+1"`),
  );
  const ok = paxEntry({ size: "5", uid: "1000", gid: "0012" }).parse();
  assert.deepEqual([ok.size, ok.uid, ok.gid], [5, 1000, 12]);
  // An empty value keeps the header's field (as POSIX says and Go does).
  assert.equal(paxEntry({ size: "" }).parse().size, 5);
});

Deno.test("strict tar: PAX times are -?digits(.digits)?", () => {
  for (
    const [v, t] of [["1700000000", 1700000000], ["-1.5", -1.5], ["1700000000.123456789", 1700000000.123456789], [
      "0",
      0,
    ]]
  ) {
    assert.equal(paxEntry({ mtime: v as string }).parse().mtime, t, v as string);
  }
  for (const field of ["mtime", "atime", "ctime"]) {
    for (const v of ["0x10", "1e2", "+5", " 5", "1.", ".5", "1.5.6", "--1", "NaN", "Infinity", "1,5"]) {
      assert.throws(
        () => paxEntry({ [field]: v }).parse(),
        (e: Error) =>
          e instanceof FormatError &&
          e.message === `tar entry "etc/x" (at byte 512): PAX ${field} ${JSON.stringify(v)} is not a time in seconds`,
        `${field}=${v}`,
      );
    }
  }
  assert.throws(
    () => paxEntry({ mtime: "99999999999999999.5" }).parse(),
    /PAX mtime 99999999999999999.5 is out of range/,
  );
});

Deno.test("strict tar: PAX records are framed exactly", () => {
  const group = (data: string | Uint8Array) => {
    const bytes = typeof data === "string" ? enc.encode(data) : data;
    const padded = new Uint8Array(Math.ceil(bytes.length / 512) * 512);
    padded.set(bytes);
    return concat([
      headerBlock({ name: "PaxHeaders/f", typeflag: "x", size: bytes.length }),
      padded,
      headerBlock({ name: "f", typeflag: "0" }),
    ]);
  };
  const parse = (data: string | Uint8Array) => parseHeaderGroup(group(data), new Map(), 1024);
  assert.equal(parse("10 path=a\n").path, "a");
  assert.equal(parse("10 path=a\n\0\0\0").path, "a", "trailing NUL padding");
  const bad: [string, RegExp][] = [
    ["+10 path=a\n", /length "\+10" is not a decimal number/],
    ["0xa path=a\n", /length "0xa" is not a decimal number/],
    [" 10 path=a\n", /length "" is not a decimal number/],
    ["11 path=a\n", /length 11 does not fit the record/],
    ["10 path=ab", /no newline at its end/],
    ["3 k\n", /length 3 does not fit the record/],
    ["8 patha\n", /no '='/],
    ["5 =a\n", /empty key/],
    ["10 pa\0h=a\n", /NUL in its key/],
    ["10 path=\0\n", /NUL in the value of path/],
    ["10 path=a\n\0\0x", /data after NUL padding/],
    ["10path=a\n", /no length/],
  ];
  for (const [data, message] of bad) {
    assert.throws(
      () => parse(data),
      (e: Error) =>
        e instanceof FormatError &&
        e.message.startsWith("tar entry at byte 1024: 'x' extension header: PAX record at byte ") &&
        message.test(e.message),
      JSON.stringify(data),
    );
  }
  // Values of other keys may hold any byte (xattrs are binary).
  const xattr = parse("25 SCHILY.xattr.user.k=\0\n");
  assert.deepEqual([...xattr.xattrs["user.k"]], [0]);
});

Deno.test("strict tar: header groups are bounded", () => {
  // Five 1 MiB PAX headers in a row: over MAX_HEADER_GROUP before the fifth is read.
  const data = paxRecords({ comment: "c".repeat((1 << 20) - 20) });
  const x = concat([
    headerBlock({ name: "PaxHeaders/f", typeflag: "x", size: data.length }),
    data,
    new Uint8Array(-data.length & 511),
  ]);
  const tar = concat([x, x, x, x, x, headerBlock({ name: "f", typeflag: "0" })]);
  assert.throws(() => parseHeaderGroup(tar, new Map(), 0), new RegExp(`headers of over ${MAX_HEADER_GROUP} bytes`));
  const big = patchField(headerBlock({ name: "PaxHeaders/f", typeflag: "x" }), 0, "size", base256(2 ** 40, 12));
  assert.throws(
    () => parseHeaderGroup(big, new Map(), 0),
    /'x' extension header of 1099511627776 bytes is over the limit of 1048576/,
  );
});

// ---- oci-archive ----

/** A valid image in a layout, packed with changes. */
async function hostileArchive(dir: string, extra: TarSpec[], edit?: (tar: Uint8Array) => void): Promise<string> {
  await writeImage(`${dir}/layout`, { tag: "t", layers: [{ tar: sampleTar() }] });
  const file = `${dir}/image.tar`;
  await packArchive(`${dir}/layout`, file, { extra, edit });
  return file;
}

const ARCHIVE_CASES: { name: string; extra: TarSpec[]; edit?: (tar: Uint8Array) => void; message: RegExp }[] = [
  {
    name: "a member with a negative base-256 size",
    extra: [{ path: "blobs/junk", content: "0123456789" }],
    edit: (tar) => patchField(tar, findHeader(tar, "blobs/junk"), "size", base256(-512, 12)),
    message: /tar entry "blobs\/junk" \(at byte \d+\): header size field is negative \(-512\)$/,
  },
  {
    name: "a PAX size=-1536 after a directory",
    extra: [{ path: "blobs/junk", content: "x", pax: { size: "-1536" } }],
    message: /tar entry "blobs\/junk" \(at byte \d+\): PAX size "-1536" is not a decimal number$/,
  },
  {
    name: "a member larger than the archive",
    extra: [{ path: "blobs/junk", content: "x", pax: { size: String(2 ** 40) } }],
    message:
      /tar entry "blobs\/junk" \(at byte \d+\): its 1099511627776 bytes of content run past the end of the archive/,
  },
];

Deno.test("strict tar: hostile oci-archives fail ArchiveFiles.open with a FormatError, quickly", async () => {
  for (const c of ARCHIVE_CASES) {
    await using tmp = await tempDir();
    const file = await hostileArchive(tmp.path, c.extra, c.edit);
    const r = await bounded({ kind: "index", path: file });
    assertFormatError(r, new RegExp(`^oci-archive:${file}: ${c.message.source}`));
  }
});

/** Runs the CLI as a child process, killed when it takes over `ms` (the test then fails). */
async function cliWithin(args: string[], ms: number): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = deltashipCommand(args).spawn();
  let killed = false;
  const timer = setTimeout(() => {
    killed = true;
    child.kill("SIGKILL");
  }, ms);
  const out = await child.output();
  clearTimeout(timer);
  assert.ok(!killed, `deltaship ${args.join(" ")} was still running after ${ms} ms`);
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("strict tar: pull oci-archive:FILE of a hostile archive exits 1 with one line", async () => {
  for (const c of ARCHIVE_CASES.slice(0, 2)) {
    await using tmp = await tempDir();
    const file = await hostileArchive(tmp.path, c.extra, c.edit);
    const r = await cliWithin(["--repo", `${tmp.path}/repo`, "pull", `oci-archive:${file}:t`, "bad"], 30_000);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr.trim(), c.message);
    assert.equal(r.stdout, "");
  }
});

Deno.test("strict tar: the splitter and the archive indexer read header groups by the same rules", async () => {
  const hostile: Uint8Array[] = [
    negativeExtension("x"),
    negativeExtension("L"),
    paxEntry({ size: "0x10" }).tar,
    paxEntry({ mtime: "1e2" }).tar,
    patchField(buildTar([{ path: "a", content: "1" }]), 0, "mode", "7x7"),
    concat([
      headerBlock({ name: "PaxHeaders/f", typeflag: "x", size: 5 }),
      enc.encode("5 a=\n").slice(0, 5),
      new Uint8Array(507),
      buildTar([]),
    ]),
  ];
  await using tmp = await tempDir();
  for (const [i, tar] of hostile.entries()) {
    const file = `${tmp.path}/${i}.tar`;
    await Deno.writeFile(file, tar);
    const split = await bounded({ kind: "split", tar });
    const index = await bounded({ kind: "index", path: file });
    assert.ok(!split.ok && !index.ok, `case ${i}: both must fail`);
    assert.equal(split.name, "FormatError", split.message);
    assert.equal(index.message, `oci-archive:${file}: ${split.message}`, `case ${i}`);
  }
});

// ---- a layer through the CLI ----

Deno.test("strict tar: pulling a tiny gzip layer with a negative extension size fails fast, repository unchanged", async () => {
  await using tmp = await tempDir();
  const repo = `${tmp.path}/repo`;
  const dir = `${tmp.path}/layout`;
  await writeImage(dir, { tag: "good", layers: [{ tar: sampleTar("good") }] });
  assert.equal((await deltaship(repo, "pull", `oci:${dir}:good`, "good")).code, 0);
  const before = (await deltaship(repo, "--json", "images")).stdout;
  const tar = negativeExtension("x");
  assert.ok(compress(tar, "gzip").length < 200, `the hostile layer is tiny (${compress(tar, "gzip").length} bytes)`);
  await writeImage(dir, { tag: "bad", layers: [{ tar }] });
  const t0 = performance.now();
  const r = await cliWithin(["--repo", repo, "pull", `oci:${dir}:bad`, "bad"], 30_000);
  const ms = performance.now() - t0;
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  assert.match(
    r.stderr,
    /layer sha256:[0-9a-f]{64}: tar entry at byte 0: 'x' extension header size field is negative \(-512\)/,
  );
  assert.doesNotMatch(r.stderr, /^\s+at /m);
  console.log(`hostile layer pull failed in ${ms.toFixed(0)} ms`);
  assert.equal((await deltaship(repo, "--json", "images")).stdout, before);
  const fsck = await deltaship(repo, "fsck");
  assert.equal(fsck.code, 0, fsck.stdout);
  assert.deepEqual([...Deno.readDirSync(`${repo}/tmp`)], []);
  assert.equal((await deltaship(repo, "gc")).code, 0, "the repository lock was released");
});

// ---- layer records ----

/** A layer record by hand: magic, items, footer. */
function record(items: Uint8Array[], tarSize: number | bigint, entries = 0): Uint8Array {
  const footer = new Uint8Array(25);
  const view = new DataView(footer.buffer);
  footer[0] = 0x45;
  view.setBigUint64(1, BigInt(tarSize), true);
  view.setBigUint64(9, BigInt(entries), true);
  footer.set(enc.encode("DSLEND01"), 17);
  return concat([enc.encode("DSLAYER2"), ...items, footer]);
}

function item(tag: string, length: number, bytes = new Uint8Array(0)): Uint8Array {
  const b = new Uint8Array(11);
  b[0] = tag.charCodeAt(0);
  return concat([b.subarray(0, writeVarint(b, 1, length)), bytes]);
}

Deno.test("strict records: item lengths are checked against the footer before they are used", async () => {
  await using tmp = await tempDir();
  const cases: [string, Uint8Array, RegExp][] = [
    [
      "zero run past the tar size",
      record([item("Z", 2 ** 50)], 1024),
      /zero-run item at byte 8 \(1125899906842624 bytes\) runs past the tar size in the footer \(1024\)/,
    ],
    [
      "object past the tar size",
      record([item("O", 2 ** 40, new Uint8Array(32))], 512),
      /object item at byte 8 .* runs past the tar size/,
    ],
    [
      "header item over the limit",
      record([item("H", MAX_HEADER_GROUP + 1)], 2 ** 40),
      new RegExp(`header item at byte 8 is ${MAX_HEADER_GROUP + 1} bytes, over the limit`),
    ],
    [
      "raw item over the limit",
      record([item("R", 1 << 20)], 2 ** 40),
      /raw item at byte 8 is 1048576 bytes, over the limit of 65536/,
    ],
    [
      "items short of the tar size",
      record([item("Z", 1024)], 2048),
      /its items hold 1024 bytes of tar, the footer says 2048/,
    ],
    ["tar size past 2^53", record([item("Z", 1024)], 2n ** 60n), /footer totals are out of range/],
  ];
  for (const [name, bytes, message] of cases) {
    const path = `${tmp.path}/record`;
    await Deno.writeFile(path, bytes);
    assertFormatError(await bounded({ kind: "record", path }), message);
    if (name === "tar size past 2^53") await assert.rejects(readFooter(path), FormatError, "out of range");
  }
  await Deno.writeFile(`${tmp.path}/record`, record([item("Z", 1024)], 1024));
  const r = await bounded({ kind: "record", path: `${tmp.path}/record` });
  assert.ok(r.ok && r.value === 1, "a record that adds up reads");
});

// ---- OCI documents ----

Deno.test("strict documents: descriptor sizes are non-negative safe integers", () => {
  const digest = "sha256:" + "a".repeat(64);
  for (const size of [-1, 1.5, 2 ** 53, "10", null, 1e400]) {
    assert.throws(
      () => checkDescriptor({ mediaType: "application/octet-stream", digest, size }, "layer 0"),
      (e: Error) => e instanceof FormatError && e.message === `layer 0 (${digest}) has an invalid size`,
      String(size),
    );
  }
  assert.equal(
    checkDescriptor({ mediaType: "application/octet-stream", digest, size: 2 ** 53 - 1 }, "x").size,
    2 ** 53 - 1,
  );
});
