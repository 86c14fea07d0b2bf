/**
 * A tar entry as Go's archive/tar reads it, which is what containers/storage
 * puts in a zstd:chunked TOC (`NewFileMetadata` in
 * `pkg/chunked/internal/minimal/compression.go`) and checks the tar-split's
 * headers against (`ensureTOCMatchesTarSplit`): the name before any cleaning,
 * ustar prefixes, GNU and STAR access and change times, PAX times to the
 * nanosecond, the entry's own `SCHILY.xattr.*` records.
 *
 * Entries containers/storage cannot represent are refused, so that nothing
 * deltaship writes is a layer containers/storage would choke on: types without
 * a TOC type (PAX globals, GNU sparse and contiguous files, volume headers),
 * GNU sparse PAX records, and content behind a header-only type (Go reads the
 * bytes as the next header).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { UnsupportedError } from "../errors.ts";
import { BLOCK, cString, latin1, numeric, quote, type TarEntry } from "../tar/header.ts";
import type { HeaderExtensions } from "../tar/header_group.ts";
import type { GoTime } from "./go_json.ts";
import type { TocMetadata, TocType } from "./toc.ts";

/** The entry types of a TOC, by tar typeflag (`\0` is settled by the name). */
const TOC_TYPES: Record<string, TocType> = {
  "0": "reg",
  "1": "hardlink",
  "2": "symlink",
  "3": "char",
  "4": "block",
  "5": "dir",
  "6": "fifo",
};

const utf8 = new TextEncoder();
const XATTR = "SCHILY.xattr.";

/**
 * The TOC metadata of the tar entry whose header group is `group` (parsed by
 * deltaship's reader into `entry` and `extensions`); throws an
 * UnsupportedError for entries containers/storage cannot represent.
 */
export function tocMetadata(entry: TarEntry, group: Uint8Array, extensions: HeaderExtensions): TocMetadata {
  const what = `tar entry ${quote(entry.path)}`;
  const block = group.subarray(group.length - BLOCK);
  const { pax } = extensions;
  for (const key of pax.keys()) {
    if (key.startsWith("GNU.sparse.")) throw new UnsupportedError(`${what} is a GNU sparse file, ${NO_TOC}`);
  }
  const header = goHeader(block, what);
  const nonEmpty = (v: Uint8Array | undefined) => (v !== undefined && v.length > 0 ? v : undefined);
  const name = nonEmpty(extensions.longName) ?? nonEmpty(pax.get("path")) ?? header.name;
  const linkname = nonEmpty(extensions.longLink) ?? nonEmpty(pax.get("linkpath")) ?? cString(block, 157, 100);
  let type = TOC_TYPES[entry.typeflag];
  if (entry.typeflag === "\0") type = name[name.length - 1] === 0x2f ? "dir" : "reg";
  if (!type) throw new UnsupportedError(`${what} has type ${quote(entry.typeflag)}, ${NO_TOC}`);
  if (type !== "reg" && entry.size > 0) {
    throw new UnsupportedError(`${what} is a ${type} with ${entry.size} bytes of content, ${NO_TOC}`);
  }
  const xattrs: [string, Uint8Array][] = [];
  for (const [k, v] of pax) if (k.startsWith(XATTR)) xattrs.push([k.slice(XATTR.length), v]);
  xattrs.sort((a, b) => Buffer.compare(utf8.encode(a[0]), utf8.encode(b[0])));
  return {
    type,
    name,
    linkname,
    mode: entry.mode,
    size: entry.size,
    uid: entry.uid,
    gid: entry.gid,
    mtime: paxTime(pax, "mtime", what) ?? { seconds: numeric(block, 136, 12, "mtime", true), nanos: 0 },
    atime: paxTime(pax, "atime", what) ?? header.atime,
    ctime: paxTime(pax, "ctime", what) ?? header.ctime,
    devmajor: entry.devmajor,
    devminor: entry.devminor,
    xattrs,
  };
}

const NO_TOC = "which a zstd:chunked layer cannot hold (containers/storage has no TOC entry for it)";

/** The name and times Go takes from the main header block (`readHeader` in archive/tar's reader.go). */
function goHeader(block: Uint8Array, what: string): { name: Uint8Array; atime?: GoTime; ctime?: GoTime } {
  const magic = latin1.decode(block.subarray(257, 263));
  const version = latin1.decode(block.subarray(263, 265));
  const star = magic === "ustar\0" && latin1.decode(block.subarray(508, 512)) === "tar\0";
  let name = cString(block, 0, 100);
  let prefix: Uint8Array | undefined;
  let atime: GoTime | undefined;
  let ctime: GoTime | undefined;
  const at = (offset: number, field: string): GoTime => {
    try {
      return { seconds: numeric(block, offset, 12, field, true), nanos: 0 };
    } catch (e) {
      throw new UnsupportedError(`${what}: ${(e as Error).message}`);
    }
  };
  if (star) {
    prefix = cString(block, 345, 131);
    atime = at(476, "atime");
    ctime = at(488, "ctime");
  } else if (magic === "ustar\0") {
    prefix = cString(block, 345, 155);
  } else if (magic === "ustar " && version === " \0") {
    // GNU: access and change times where set; a header that old Go writers mangled
    // (an ustar prefix where these fields are) is read for its prefix, as Go does.
    try {
      if (block[345] !== 0) atime = at(345, "atime");
      if (block[357] !== 0) ctime = at(357, "ctime");
    } catch {
      atime = ctime = undefined;
      const p = cString(block, 345, 155);
      if (p.every((b) => b < 0x80)) prefix = p;
    }
  }
  if (prefix && prefix.length > 0) {
    const joined = new Uint8Array(prefix.length + 1 + name.length);
    joined.set(prefix);
    joined[prefix.length] = 0x2f;
    joined.set(name, prefix.length + 1);
    name = joined;
  }
  return { name, atime, ctime };
}

/** A PAX time record as Go's `parsePAXTime` reads it (the fraction cut at nanoseconds). */
function paxTime(pax: ReadonlyMap<string, Uint8Array>, key: string, what: string): GoTime | undefined {
  const raw = pax.get(key);
  if (raw === undefined || raw.length === 0) return undefined;
  const m = /^(-?)([0-9]+)(?:\.([0-9]+))?$/.exec(latin1.decode(raw));
  const seconds = m ? Number(m[2]) : NaN;
  if (!m || !Number.isSafeInteger(seconds)) throw new UnsupportedError(`${what}: PAX ${key} is not a time`);
  const nanos = Number((m[3] ?? "").slice(0, 9).padEnd(9, "0"));
  if (m[1] !== "-") return { seconds, nanos };
  // time.Unix(-s, -n), normalised to a non-negative fraction
  return nanos === 0 ? { seconds: -seconds, nanos: 0 } : { seconds: -seconds - 1, nanos: 1e9 - nanos };
}
