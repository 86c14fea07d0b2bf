/**
 * Test helper: one-rule probe images for the composefs tree rules (issue 22),
 * beside the four in `testdata/composefs-rs-rules/`: tars with names as raw
 * bytes, absolute names, hardlinks to fifos and devices, odd typeflags and
 * modes. Each probe is its layers and the dumpfile of the tree deltaship gives
 * it (`composefs-info dump` form, directory sizes aside: {@link withoutDirSizes}),
 * derived from composefs-rs's rules, or from the OCI image spec and the engines
 * where deltaship follows those instead (docs/design.md says which).
 */
import { fsverityHex } from "../../src/composefs/fsverity.ts";
import { concat } from "../../src/util/streams.ts";
import { fixChecksum, headerBlock } from "./tar.ts";

const enc = new TextEncoder();

/** A name or link target: text (UTF-8) or raw bytes. */
export type Bytes = string | Uint8Array;

/** One entry of a probe tar. */
export interface RawEntry {
  name: Bytes;
  /** The typeflag character ("0" file, "\0" old file, "1" hardlink, "2" symlink, "3"/"4" devices, "5" dir, "6" fifo). */
  typeflag: string;
  mode?: number;
  mtime?: number;
  content?: Bytes;
  linkname?: Bytes;
  devmajor?: number;
  devminor?: number;
  /** PAX records for the entry (values as bytes when raw). */
  pax?: Record<string, Bytes>;
}

function bytes(b: Bytes): Uint8Array {
  return typeof b === "string" ? enc.encode(b) : b;
}

function pad(n: number): Uint8Array {
  return new Uint8Array((512 - (n % 512)) % 512);
}

function octal(n: number, width: number): Uint8Array {
  return enc.encode(n.toString(8).padStart(width - 1, "0") + "\0");
}

/** PAX records with byte values: each `"%d key=value\n"`, its length counting itself. */
function paxData(records: Record<string, Bytes>): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const [k, v] of Object.entries(records)) {
    const body = concat([enc.encode(` ${k}=`), bytes(v), enc.encode("\n")]);
    let len = body.length + 1;
    while (String(len).length + body.length !== len) len = String(len).length + body.length;
    parts.push(enc.encode(String(len)), body);
  }
  return concat(parts);
}

/** A tar of `entries`, names and link targets written byte for byte (at most 100 bytes each, or in PAX). */
export function rawTar(entries: RawEntry[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const e of entries) {
    const content = bytes(e.content ?? "");
    if (e.pax) {
      const data = paxData(e.pax);
      parts.push(headerBlock({ name: "PaxHeader", typeflag: "x", size: data.length }), data, pad(data.length));
    }
    const block = headerBlock({ name: "x", typeflag: "0", size: content.length, mode: e.mode, mtime: e.mtime });
    block.fill(0, 0, 100);
    block.set(bytes(e.name).subarray(0, 100), 0);
    block[156] = e.typeflag === "\0" ? 0 : e.typeflag.charCodeAt(0);
    if (e.linkname !== undefined) block.set(bytes(e.linkname).subarray(0, 100), 157);
    block.set(octal(e.devmajor ?? 0, 8), 329);
    block.set(octal(e.devminor ?? 0, 8), 337);
    parts.push(fixChecksum(block), content, pad(content.length));
  }
  parts.push(new Uint8Array(1024));
  return concat(parts);
}

/** A dumpfile with each directory's SIZE (which the image decides, and readers ignore) as 0. */
export function withoutDirSizes(dump: string): string {
  return dump.split("\n").map((line) => {
    const f = line.split(" ");
    return f.length > 2 && /^@?4\d{4}$/.test(f[2]) ? [f[0], "0", ...f.slice(2)].join(" ") : line;
  }).join("\n");
}

/** A probe: its layers (bottom first) and the dumpfile of its tree. */
export interface Probe {
  layers: RawEntry[][];
  dump: string;
}

const big = "b".repeat(512); // external: more than 64 bytes
const bigId = fsverityHex(enc.encode(big));
const BIG = `512 100644 1 0 0 0 1000.0 ${bigId.slice(0, 2)}/${bigId.slice(2)} - ${bigId}`;
const usr: RawEntry = { name: "usr/", typeflag: "5", mode: 0o755, mtime: 2000 };

/**
 * The probes, by name. Each one's expected tree, and what it rests on:
 * - `hardlink-to-fifo-device`: a hardlink to a fifo or device node is the same
 *   leaf (composefs-rs `process_entry`: `TarItem::Hardlink` takes the `leaf_id`
 *   of whatever leaf is there), so pull stores an image and compute-id works;
 * - `absolute-names`: a leading `/` in a member name or hardlink target is
 *   dropped (`make_absolute_path` in composefs-rs `tar.rs`; Go's archive/tar and
 *   umoci clean it away too), a symlink's target is kept as it is;
 * - `non-utf8-names`: names, hardlink targets and symlink targets are their
 *   bytes (composefs-rs keeps `OsStr` bytes), escaped `\xNN` in the dumpfile;
 * - `whiteout-same-layer`: a whiteout hides only what lower layers had (OCI
 *   image-spec layer.md), not an entry its own layer wrote before it (where
 *   composefs-rs, applying it in tar order, removes that entry too);
 * - `nul-typeflag-dir`: a typeflag-NUL (old regular file) entry whose name ends
 *   in `/` is a directory, as Go's archive/tar reads it (composefs-rs: a file);
 *   a typeflag-`0` one is a file, the slash dropped (as composefs-rs and umoci);
 * - `mode-type-bits`: the file type comes from the typeflag, never from type
 *   bits in the mode field, which are dropped (composefs-rs keeps the field);
 * - `no-usr-missing-parents`: an image without `/usr` keeps its root's own
 *   metadata, and parents no entry names are made 0755, root, mtime 0
 *   (composefs-rs refuses both; deltaship builds what engines extract).
 */
export const PROBES: Record<string, Probe> = {
  "hardlink-to-fifo-device": {
    layers: [[
      usr,
      { name: "usr/lib/", typeflag: "5", mode: 0o755, mtime: 1000 },
      { name: "usr/lib/pipe", typeflag: "6", mode: 0o644, mtime: 1000 },
      { name: "usr/lib/null", typeflag: "3", mode: 0o666, mtime: 1000, devmajor: 1, devminor: 3 },
      { name: "usr/lib/disk", typeflag: "4", mode: 0o660, mtime: 1000, devmajor: 8, devminor: 0 },
      { name: "etc/", typeflag: "5", mode: 0o755, mtime: 1000 },
      { name: "etc/pipe", typeflag: "1", linkname: "usr/lib/pipe" },
      { name: "etc/null", typeflag: "1", linkname: "usr/lib/null" },
      { name: "etc/disk", typeflag: "1", linkname: "usr/lib/disk" },
    ]],
    dump: [
      "/ 0 40755 4 0 0 0 2000.0 - - -",
      "/etc 0 40755 2 0 0 0 1000.0 - - -",
      "/etc/disk 0 60660 2 0 0 2048 1000.0 - - -",
      "/etc/null 0 20666 2 0 0 259 1000.0 - - -",
      "/etc/pipe 0 10644 2 0 0 0 1000.0 - - -",
      "/usr 0 40755 3 0 0 0 2000.0 - - -",
      "/usr/lib 0 40755 2 0 0 0 1000.0 - - -",
      "/usr/lib/disk 0 @60660 2 0 0 2048 1000.0 /etc/disk - -",
      "/usr/lib/null 0 @20666 2 0 0 259 1000.0 /etc/null - -",
      "/usr/lib/pipe 0 @10644 2 0 0 0 1000.0 /etc/pipe - -",
    ].join("\n"),
  },
  "absolute-names": {
    layers: [[
      { ...usr, name: "/usr/" },
      { name: "/usr/bin/", typeflag: "5", mode: 0o755, mtime: 1000 },
      { name: "/usr/bin/tool", typeflag: "0", mode: 0o644, mtime: 1000, content: big },
      { name: "//etc/", typeflag: "5", mode: 0o755, mtime: 1000 },
      { name: "/etc/tool", typeflag: "1", linkname: "/usr/bin/tool" },
      { name: "/etc/abs", typeflag: "2", mode: 0o777, mtime: 1000, linkname: "/usr/bin/tool" },
    ]],
    dump: [
      "/ 0 40755 4 0 0 0 2000.0 - - -",
      "/etc 0 40755 2 0 0 0 1000.0 - - -",
      "/etc/abs 13 120777 1 0 0 0 1000.0 /usr/bin/tool - -",
      `/etc/tool ${BIG.replace(" 1 0 0 0", " 2 0 0 0")}`,
      "/usr 0 40755 3 0 0 0 2000.0 - - -",
      "/usr/bin 0 40755 2 0 0 0 1000.0 - - -",
      "/usr/bin/tool 512 @100644 2 0 0 0 1000.0 /etc/tool - -",
    ].join("\n"),
  },
  "non-utf8-names": {
    layers: [[
      usr,
      { name: Uint8Array.of(...enc.encode("usr/caf"), 0xe9), typeflag: "0", mode: 0o644, mtime: 1000, content: "x" },
      { name: Uint8Array.of(...enc.encode("usr/"), 0xff, 0xfe, 0x2f), typeflag: "5", mode: 0o755, mtime: 1000 },
      { name: Uint8Array.of(...enc.encode("usr/"), 0xff, 0xfe, ...enc.encode("/f")), typeflag: "0", mtime: 1000 },
      {
        name: "usr/link",
        typeflag: "2",
        mode: 0o777,
        mtime: 1000,
        linkname: Uint8Array.of(...enc.encode("caf"), 0xe9),
      },
      {
        name: "usr/pax-name",
        typeflag: "0",
        mode: 0o644,
        mtime: 1000,
        content: "z",
        pax: { path: Uint8Array.of(...enc.encode("usr/pax-"), 0xe9, 0x80, ...enc.encode("-\u00e9")) },
      },
      {
        name: Uint8Array.of(...enc.encode("usr/hl-"), 0xe9),
        typeflag: "1",
        linkname: Uint8Array.of(...enc.encode("usr/caf"), 0xe9),
      },
    ]],
    dump: [
      "/ 0 40755 3 0 0 0 2000.0 - - -",
      "/usr 0 40755 3 0 0 0 2000.0 - - -",
      "/usr/caf\\xe9 1 100644 2 0 0 0 1000.0 - x -",
      "/usr/hl-\\xe9 1 @100644 2 0 0 0 1000.0 /usr/caf\\xe9 - -",
      "/usr/link 4 120777 1 0 0 0 1000.0 caf\\xe9 - -",
      "/usr/pax-\\xe9\\x80-\\xc3\\xa9 1 100644 1 0 0 0 1000.0 - z -",
      "/usr/\\xff\\xfe 0 40755 2 0 0 0 1000.0 - - -",
      "/usr/\\xff\\xfe/f 0 100644 1 0 0 0 1000.0 - - -",
    ].join("\n"),
  },
  "whiteout-same-layer": {
    layers: [
      [
        usr,
        { name: "usr/lib/", typeflag: "5", mode: 0o755, mtime: 1000 },
        { name: "usr/lib/old", typeflag: "0", mode: 0o644, mtime: 1000, content: "old" },
      ],
      [
        { name: "usr/lib/new", typeflag: "0", mode: 0o644, mtime: 1000, content: "new" },
        { name: "usr/lib/.wh.new", typeflag: "0", mode: 0o644, mtime: 1000 },
        { name: "usr/lib/.wh.old", typeflag: "0", mode: 0o644, mtime: 1000 },
      ],
    ],
    dump: [
      "/ 0 40755 3 0 0 0 2000.0 - - -",
      "/usr 0 40755 3 0 0 0 2000.0 - - -",
      "/usr/lib 0 40755 2 0 0 0 1000.0 - - -",
      "/usr/lib/new 3 100644 1 0 0 0 1000.0 - new -",
    ].join("\n"),
  },
  "nul-typeflag-dir": {
    layers: [[
      usr,
      { name: "usr/share/", typeflag: "\0", mode: 0o755, mtime: 1000 },
      { name: "usr/share/x", typeflag: "0", mode: 0o644, mtime: 1000, content: "x" },
      { name: "usr/file0/", typeflag: "0", mode: 0o644, mtime: 1000, content: "f" },
    ]],
    dump: [
      "/ 0 40755 3 0 0 0 2000.0 - - -",
      "/usr 0 40755 3 0 0 0 2000.0 - - -",
      "/usr/file0 1 100644 1 0 0 0 1000.0 - f -",
      "/usr/share 0 40755 2 0 0 0 1000.0 - - -",
      "/usr/share/x 1 100644 1 0 0 0 1000.0 - x -",
    ].join("\n"),
  },
  "mode-type-bits": {
    layers: [[
      usr,
      { name: "usr/lib/", typeflag: "5", mode: 0o100755, mtime: 1000 },
      { name: "usr/lib/f", typeflag: "0", mode: 0o040640, mtime: 1000, content: "f" },
      { name: "usr/lib/s", typeflag: "2", mode: 0o100777, mtime: 1000, linkname: "f" },
    ]],
    dump: [
      "/ 0 40755 3 0 0 0 2000.0 - - -",
      "/usr 0 40755 3 0 0 0 2000.0 - - -",
      "/usr/lib 0 40755 2 0 0 0 1000.0 - - -",
      "/usr/lib/f 1 100640 1 0 0 0 1000.0 - f -",
      "/usr/lib/s 1 120777 1 0 0 0 1000.0 f - -",
    ].join("\n"),
  },
  "no-usr-missing-parents": {
    layers: [[
      { name: "./", typeflag: "5", mode: 0o700, mtime: 5 },
      { name: "opt/a/b/file", typeflag: "0", mode: 0o600, mtime: 1000, content: "deep" },
      { name: "run/", typeflag: "5", mode: 0o755, mtime: 3000 },
      { name: "run/stub", typeflag: "0", mode: 0o644, mtime: 3000 },
    ]],
    dump: [
      "/ 0 40700 4 0 0 0 5.0 - - -",
      "/opt 0 40755 3 0 0 0 0.0 - - -",
      "/opt/a 0 40755 3 0 0 0 0.0 - - -",
      "/opt/a/b 0 40755 2 0 0 0 0.0 - - -",
      "/opt/a/b/file 4 100600 1 0 0 0 1000.0 - deep -",
      "/run 0 40755 2 0 0 0 3000.0 - - -",
    ].join("\n"),
  },
};
