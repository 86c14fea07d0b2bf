/**
 * The source-read pattern of a tar-diff blob (what justified tardiff/read_batch.ts):
 *
 *   deno run -A bench/read_pattern.ts BLOB [BATCH_BYTES]
 *
 * Prints the number of Copy/AddData reads, the distance from the end of one read
 * to the start of the next (percentiles), and, per output batch of BATCH_BYTES
 * (default 8 MiB), how many reads and bytes serving them in merged runs takes.
 *
 * @module
 */
import { Op } from "../src/tardiff/format.ts";
import { OpInput } from "../src/tardiff/op_input.ts";

interface Read {
  file: number;
  pos: number;
  len: number;
}

/** The reads of the tar-diff in `blob`, grouped by output batch of `batch` bytes. */
async function batches(blob: string, batch: number): Promise<{ batches: Read[][]; distances: number[] }> {
  const input = new OpInput((await Deno.open(blob)).readable, 1 << 19);
  const all: Read[][] = [];
  const distances: number[] = [];
  let reads: Read[] = [];
  let file = -1, pos = 0, out = 0, last = 0;
  const advance = (n: number) => {
    out += n;
    if (out % batch === 0) (all.push(reads), reads = []);
  };
  for (;;) {
    if (input.pos >= input.buf.length && !(await input.more())) break;
    if (!input.header()) await input.headerSlow();
    const { op, size } = input;
    if (op === Op.Data || op === Op.Open || op === Op.AddData || op === Op.ZstdDict) {
      for (let left = size; left > 0;) {
        if (input.pos >= input.buf.length && !(await input.more())) throw new Error("truncated tar-diff");
        const n = Math.min(left, input.buf.length - input.pos);
        input.pos += n;
        left -= n;
      }
    }
    if (op === Op.Open) (file++, pos = 0);
    else if (op === Op.Seek) pos = size;
    else if (op === Op.Copy || op === Op.AddData || op === Op.Data) {
      for (let left = size; left > 0;) {
        const n = Math.min(left, batch - (out % batch));
        if (op !== Op.Data) {
          reads.push({ file, pos, len: n });
          distances.push(Math.abs(pos - last));
          last = pos + n;
          pos += n;
        }
        advance(n);
        left -= n;
      }
    }
  }
  all.push(reads);
  return { batches: all, distances };
}

if (import.meta.main) {
  const [blob, size] = Deno.args;
  if (!blob) throw new Error("usage: read_pattern.ts BLOB [BATCH_BYTES]");
  const batch = Number(size ?? 8 << 20);
  const { batches: all, distances } = await batches(blob, batch);
  distances.sort((a, b) => a - b);
  const q = (p: number) => distances[Math.floor(p * (distances.length - 1))] ?? 0;
  console.log(
    `reads ${distances.length}, batches of ${batch} B: ${all.length}; distance to the next read: ` +
      `p10 ${q(0.1)} p50 ${q(0.5)} p90 ${q(0.9)} p99 ${q(0.99)}`,
  );
  for (const gap of [0, 4096, 32768]) {
    let runs = 0, bytes = 0;
    for (const b of all) {
      const s = [...b].sort((x, y) => x.file - y.file || x.pos - y.pos);
      for (let i = 0; i < s.length;) {
        const start = s[i].pos;
        let end = start + s[i].len;
        const f = s[i++].file;
        while (i < s.length && s[i].file === f && s[i].pos <= end + gap && s[i].pos + s[i].len - start <= 1 << 20) {
          end = Math.max(end, s[i].pos + s[i++].len);
        }
        runs++;
        bytes += end - start;
      }
    }
    console.log(`runs with gaps up to ${gap} B (at most 1 MiB each): ${runs} reads, ${(bytes / 1e6).toFixed(1)} MB`);
  }
}
