/**
 * Test helper: writes tar archives from readable descriptions of their entries,
 * in ustar, PAX or GNU flavour, including deliberately odd or hostile ones.
 */

const enc = new TextEncoder();

/** One entry to write. */
export interface TarSpec {
  path: string;
  type?: "file" | "dir" | "symlink" | "hardlink" | "fifo" | "chardev";
  /** File content (string is UTF-8). */
  content?: string | Uint8Array;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string;
  /** Extra PAX records for this entry. */
  pax?: Record<string, string>;
  /** How to store a name longer than 100 bytes: PAX `path` (default) or GNU `L` entry. */
  longNames?: "pax" | "gnu";
}

/** Options for the whole archive. */
export interface TarOptions {
  /** Blocks of zeros at the end (default 2); tar(1) pads to 20 blocks. */
  endBlocks?: number;
}

const TYPEFLAG = { file: "0", dir: "5", symlink: "2", hardlink: "1", fifo: "6", chardev: "3" } as const;

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, "0") + "\0";
}

/** Builds one 512-byte header block. */
export function headerBlock(
  fields: {
    name: string;
    mode?: number;
    uid?: number;
    gid?: number;
    size?: number;
    mtime?: number;
    typeflag: string;
    linkname?: string;
    gnu?: boolean;
  },
): Uint8Array {
  const b = new Uint8Array(512);
  const put = (off: number, s: string | Uint8Array, len: number) => {
    const bytes = typeof s === "string" ? enc.encode(s) : s;
    b.set(bytes.subarray(0, len), off);
  };
  put(0, fields.name, 100);
  put(100, octal(fields.mode ?? 0o644, 8), 8);
  put(108, octal(fields.uid ?? 0, 8), 8);
  put(116, octal(fields.gid ?? 0, 8), 8);
  put(124, octal(fields.size ?? 0, 12), 12);
  put(136, octal(fields.mtime ?? 1700000000, 12), 12);
  put(148, "        ", 8);
  put(156, fields.typeflag, 1);
  put(157, fields.linkname ?? "", 100);
  put(257, fields.gnu ? "ustar  \0" : "ustar\x0000", 8);
  put(265, "root", 32);
  put(297, "root", 32);
  let sum = 0;
  for (const x of b) sum += x;
  put(148, sum.toString(8).padStart(6, "0") + "\0 ", 8);
  return b;
}

function paxData(records: Record<string, string>): Uint8Array {
  let out = "";
  for (const [k, v] of Object.entries(records)) {
    const body = ` ${k}=${v}\n`;
    let len = body.length + 1;
    while (String(len).length + enc.encode(body).length !== len) len = String(len).length + enc.encode(body).length;
    out += `${len}${body}`;
  }
  return enc.encode(out);
}

function pad(n: number): Uint8Array {
  return new Uint8Array((512 - (n % 512)) % 512);
}

/** Writes a tar archive of `entries`. */
export function buildTar(entries: TarSpec[], options: TarOptions = {}): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const e of entries) {
    const type = e.type ?? (e.path.endsWith("/") ? "dir" : "file");
    const content = typeof e.content === "string" ? enc.encode(e.content) : e.content ?? new Uint8Array(0);
    const pax: Record<string, string> = { ...e.pax };
    let name = e.path;
    if (enc.encode(name).length > 100) {
      if (e.longNames === "gnu") {
        const data = enc.encode(name + "\0");
        parts.push(
          headerBlock({ name: "././@LongLink", typeflag: "L", size: data.length, gnu: true }),
          data,
          pad(data.length),
        );
      } else {
        pax.path = name;
      }
      name = name.slice(0, 99);
    }
    if (Object.keys(pax).length) {
      const data = paxData(pax);
      parts.push(
        headerBlock({ name: `PaxHeaders/${name.slice(0, 80)}`, typeflag: "x", size: data.length }),
        data,
        pad(data.length),
      );
    }
    parts.push(
      headerBlock({
        name,
        mode: e.mode ?? (type === "dir" ? 0o755 : 0o644),
        uid: e.uid,
        gid: e.gid,
        size: content.length,
        mtime: e.mtime,
        typeflag: TYPEFLAG[type],
        linkname: e.linkname,
        gnu: e.longNames === "gnu",
      }),
      content,
      pad(content.length),
    );
  }
  parts.push(new Uint8Array(512 * (options.endBlocks ?? 2)));
  const total = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Where each numeric field of a header block lies: [offset, width]. */
export const FIELDS = {
  mode: [100, 8],
  uid: [108, 8],
  gid: [116, 8],
  size: [124, 12],
  mtime: [136, 12],
  checksum: [148, 8],
  devmajor: [329, 8],
  devminor: [337, 8],
} as const;

/** A numeric field in GNU base-256 form (two's complement, top bit set): any value, even hostile ones. */
export function base256(value: number | bigint, width: number): Uint8Array {
  let v = BigInt(value);
  const out = new Uint8Array(width);
  for (let i = width - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  out[0] |= 0x80;
  return out;
}

/** Recomputes a header block's checksum in place (after a test edited it). */
export function fixChecksum(block: Uint8Array): Uint8Array {
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of block) sum += x;
  block.set(enc.encode(sum.toString(8).padStart(6, "0") + "\0 "), 148);
  return block;
}

/**
 * Overwrites a field of the header block at `at` in `tar` (in place) with `value`
 * (raw bytes, or text padded with NULs to the field's width), then fixes the checksum.
 */
export function patchField(
  tar: Uint8Array,
  at: number,
  field: keyof typeof FIELDS,
  value: Uint8Array | string,
): Uint8Array {
  const [offset, width] = FIELDS[field];
  const bytes = new Uint8Array(width);
  bytes.set((typeof value === "string" ? enc.encode(value) : value).subarray(0, width));
  tar.set(bytes, at + offset);
  fixChecksum(tar.subarray(at, at + 512));
  return tar;
}

/** PAX records as an extended header's data, each `"%d key=value\n"` with its exact length. */
export function paxRecords(records: Record<string, string>): Uint8Array {
  return paxData(records);
}

/** Offset of the first header block of `tar` whose name field is `name` (throws when there is none). */
export function findHeader(tar: Uint8Array, name: string): number {
  const want = enc.encode(name);
  for (let at = 0; at + 512 <= tar.length; at += 512) {
    const field = tar.subarray(at, at + 100);
    if (field[want.length] === 0 && want.every((b, i) => field[i] === b)) return at;
  }
  throw new Error(`no header named ${name}`);
}
