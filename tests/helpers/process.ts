/**
 * Test helper: measuring deltaship child processes: their peak resident memory
 * (sampled from /proc), and how fast they exit after a signal.
 */
import { deltashipCommand } from "./cli.ts";

const dec = new TextDecoder();

/** Peak resident set (VmHWM) of process `pid` in bytes, or undefined once it is gone. */
export function peakRss(pid: number): number | undefined {
  try {
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** What a measured run did. */
export interface MeasuredRun {
  code: number;
  stdout: string;
  stderr: string;
  /** Highest VmHWM sampled (every 20 ms while it ran), in bytes. */
  peakRss: number;
  /** Wall time in milliseconds. */
  ms: number;
}

/** Runs deltaship with `args` as a child process, sampling its peak memory until it exits. */
export async function measuredRun(args: string[], env: Record<string, string> = {}): Promise<MeasuredRun> {
  const started = performance.now();
  const child = deltashipCommand(args, { env }).spawn();
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, peakRss(child.pid) ?? 0)), 20);
  try {
    const out = await child.output();
    return {
      code: out.code,
      stdout: dec.decode(out.stdout),
      stderr: dec.decode(out.stderr),
      peakRss: peak,
      ms: performance.now() - started,
    };
  } finally {
    clearInterval(sampler);
  }
}

/** How an interrupted run ended. */
export interface InterruptedRun {
  code: number;
  stderr: string;
  /** Milliseconds from the signal to the process's exit. */
  latencyMs: number;
}

/**
 * Runs deltaship with `args`, sends `signal` once `ready` holds (polled every
 * 5 ms, for at most `timeoutMs`), and measures how long the process then takes to exit.
 */
export async function interruptRun(
  args: string[],
  ready: () => boolean,
  signal: Deno.Signal = "SIGTERM",
  timeoutMs = 120_000,
): Promise<InterruptedRun> {
  const child = deltashipCommand(args).spawn();
  const output = child.output();
  let exited = false;
  output.finally(() => (exited = true)).catch(() => {});
  const deadline = Date.now() + timeoutMs;
  while (!ready()) {
    if (exited) {
      const out = await output;
      throw new Error(
        `${args.join(" ")} ended (${out.code}) before the moment to interrupt: ${dec.decode(out.stderr)}`,
      );
    }
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      await output;
      throw new Error(`${args.join(" ")}: the moment to interrupt never came`);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  const sent = performance.now();
  child.kill(signal);
  // A process that ignores the signal is killed after 20 s, so the test fails instead of hanging.
  const killer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  try {
    const out = await output;
    return { code: out.code, stderr: dec.decode(out.stderr), latencyMs: performance.now() - sent };
  } finally {
    clearTimeout(killer);
  }
}
