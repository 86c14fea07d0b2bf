/**
 * Throughput of ZstdDictDecoder against `zstd -d --patch-from` on `--patch-from`
 * frames of edited random files (40 MiB and 100 MiB by default), in MB/s of
 * decompressed output. The CLI's time includes its process start and reading the
 * dictionary file, so ours is given both ways: decoding alone, and with reading
 * the dictionary file.
 *
 *   deno run --allow-all bench/zstd_dict.ts [--runs N] [SIZE_MIB]...
 *   deno run --allow-all bench/zstd_dict.ts --decode DICTIONARY FRAME   (one decode, for the bench case)
 *
 * @module
 */
import { ZstdDictDecoder } from "../src/compression/zstd/dict.ts";

function noise(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  const view = new Uint32Array(out.buffer, 0, size >> 2);
  let x = seed;
  for (let i = 0; i < view.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    view[i] = x;
  }
  return out;
}

/** `old` with a few thousand overwritten and moved ranges. */
function edit(old: Uint8Array): Uint8Array {
  const out = old.slice();
  const fresh = noise(1 << 20, 99);
  for (let i = 0, x = 12345; i < 2000; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const at = x % (out.length - 1024);
    if (i % 2) out.set(fresh.subarray(i % 1000, (i % 1000) + 200), at);
    else out.copyWithin(at, (at * 7) % (out.length - 1024), ((at * 7) % (out.length - 1024)) + 500);
  }
  return out;
}

async function zstd(args: string[]): Promise<number> {
  const t = performance.now();
  const out = await new Deno.Command("zstd", { args: ["-q", "-f", ...args], stderr: "piped" }).output();
  if (out.code !== 0) throw new Error(`zstd ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  return performance.now() - t;
}

function decode(dict: Uint8Array, frame: Uint8Array): number {
  const d = new ZstdDictDecoder(dict);
  let n = 0;
  for (let at = 0; at < frame.length; at += 1 << 16) {
    d.push(frame.subarray(at, at + (1 << 16)));
    for (let p = d.pull(); p !== null; p = d.pull()) n += p.length;
  }
  d.finish();
  return n;
}

if (import.meta.main && Deno.args[0] === "--decode") {
  // One decode of FRAME against DICTIONARY, output discarded: what `zstd -d --patch-from -o /dev/null` does.
  const [, dictionary, frame] = Deno.args;
  decode(Deno.readFileSync(dictionary), Deno.readFileSync(frame));
} else if (import.meta.main) {
  const args = [...Deno.args];
  let runs = 5;
  const r = args.indexOf("--runs");
  if (r >= 0) runs = Number(args.splice(r, 2)[1]);
  const sizes = args.length > 0 ? args.map(Number) : [40, 100];
  const dir = await Deno.makeTempDir({ prefix: "zstd-dict-bench-" });
  try {
    for (const mib of sizes) {
      const old = noise(mib << 20, mib), now = edit(old);
      const [o, n, f] = [`${dir}/old`, `${dir}/new`, `${dir}/frame.zst`];
      Deno.writeFileSync(o, old);
      Deno.writeFileSync(n, now);
      await zstd(["--long=27", `--patch-from=${o}`, n, "-o", f]);
      const frame = Deno.readFileSync(f);
      const best = (times: number[]) => Math.min(...times);
      const mbs = (ms: number) => (now.length / 1e6 / (ms / 1000)).toFixed(0);
      const ours: number[] = [], oursRead: number[] = [], cli: number[] = [];
      for (let i = 0; i < runs; i++) {
        let t = performance.now();
        const dict = Deno.readFileSync(o);
        const t0 = performance.now();
        if (decode(dict, frame) !== now.length) throw new Error("wrong output size");
        ours.push(performance.now() - t0);
        oursRead.push(performance.now() - t);
        t = await zstd(["-d", "--long=31", `--patch-from=${o}`, f, "-o", "/dev/null"]);
        cli.push(t);
      }
      console.log(
        `${mib} MiB (frame ${frame.length} bytes, best of ${runs}): ZstdDictDecoder ${mbs(best(ours))} MB/s ` +
          `(${mbs(best(oursRead))} MB/s with reading the dictionary), zstd -d --patch-from ${mbs(best(cli))} MB/s`,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
