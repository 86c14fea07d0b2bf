/**
 * Measuring one command: wall time (from this process), peak resident memory and
 * CPU time (from GNU time, which reports the child's own peak RSS; Web Workers
 * are threads of that process, so they are included).
 */

/** One run of one command. */
export interface Sample {
  /** Seconds, wall clock. */
  wall: number;
  /** Peak resident set size, MiB. */
  rssMiB: number;
  /** CPU seconds in user and kernel mode. */
  cpu: number;
}

/** Options for {@link measure}. */
export interface MeasureOptions {
  env?: Record<string, string>;
  cwd?: string;
  /** Where stdout goes: discarded (default) or a file. */
  stdoutFile?: string;
}

/** Runs a command under /usr/bin/time and returns its sample; throws if it fails. */
export async function measure(cmd: string[], options: MeasureOptions = {}): Promise<Sample> {
  const timeFile = await Deno.makeTempFile({ prefix: "bench-time-" });
  const shell = options.stdoutFile ? `exec "$@" > ${JSON.stringify(options.stdoutFile)}` : `exec "$@" > /dev/null`;
  const child = new Deno.Command("/usr/bin/time", {
    args: ["-f", "%M %U %S", "-o", timeFile, "sh", "-c", shell, "sh", ...cmd],
    cwd: options.cwd,
    env: options.env,
    stdout: "null",
    stderr: "piped",
  });
  const start = performance.now();
  const out = await child.output();
  const wall = (performance.now() - start) / 1000;
  const report = (await Deno.readTextFile(timeFile)).trim().split("\n").pop() ?? "";
  await Deno.remove(timeFile);
  if (!out.success) {
    throw new Error(`${cmd.join(" ")} failed (${out.code}): ${new TextDecoder().decode(out.stderr).slice(-2000)}`);
  }
  const [kib, user, sys] = report.split(" ").map(Number);
  return { wall, rssMiB: kib / 1024, cpu: user + sys };
}

/** Several commands run one after another, as one sample: times add up, memory is the largest. */
export async function measureAll(cmds: string[][], options: MeasureOptions = {}): Promise<Sample> {
  const total: Sample = { wall: 0, rssMiB: 0, cpu: 0 };
  for (const cmd of cmds) {
    const s = await measure(cmd, options);
    total.wall += s.wall;
    total.cpu += s.cpu;
    total.rssMiB = Math.max(total.rssMiB, s.rssMiB);
  }
  return total;
}

/** Summary statistics of samples. */
export interface Summary {
  median: number;
  min: number;
  max: number;
}

/** Median, min and max of numbers. */
export function summarize(values: number[]): Summary {
  const v = [...values].sort((a, b) => a - b);
  const mid = v.length >> 1;
  const median = v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  return { median, min: v[0], max: v[v.length - 1] };
}

/** Read system calls of a run: on data (files a command works on, TCP sockets) and all of them. */
export interface ReadCount {
  data: number;
  all: number;
}

/**
 * Whether a read on `fd` (strace's `-yy` annotation: a path, `TCP:[…]`, `pipe:[…]`)
 * is on data: a file that is not the runtime's own (modules, lockfiles, Deno's
 * caches, /proc and the system's files), or a TCP socket. Deno's start-up reads
 * its module graph and code cache (about 4,000 calls under `deno run`), the same
 * for every command.
 */
export function dataRead(fd: string): boolean {
  if (/^TCP6?:/.test(fd)) return true;
  if (!fd.startsWith("/")) return false; // pipes, UNIX sockets, eventfds
  if (/\.(ts|js|mjs|json|jsonc|lock|npmrc)$/.test(fd)) return false;
  if (/^\/(proc|sys|dev|etc|usr|lib|lib64|bin)\//.test(fd)) return false;
  return !/\/\.cache\/deno\/|_cache_v\d|\/deno$/.test(fd);
}

/**
 * Runs `cmds` one after another under `strace -f -yy` and counts their read
 * system calls (read, pread64, readv, preadv, recvfrom).
 */
export async function countReads(cmds: string[][]): Promise<ReadCount> {
  const total: ReadCount = { data: 0, all: 0 };
  for (const cmd of cmds) {
    const log = await Deno.makeTempFile({ prefix: "bench-strace-" });
    try {
      const out = await new Deno.Command("strace", {
        args: ["-f", "-qq", "-yy", "-e", "trace=read,pread64,readv,preadv,recvfrom", "-o", log, ...cmd],
        stdout: "null",
        stderr: "piped",
      }).output();
      if (!out.success) throw new Error(`strace ${cmd.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
      const text = await Deno.readTextFile(log);
      for (const m of text.matchAll(/^\d+\s+(?:read|pread64|readv|preadv|recvfrom)\(\d+<(.*?)>/gm)) {
        total.all++;
        if (dataRead(m[1])) total.data++;
      }
    } finally {
      await Deno.remove(log).catch(() => {});
    }
  }
  return total;
}
