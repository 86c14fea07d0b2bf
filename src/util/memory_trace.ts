/**
 * A probe of where memory goes, for measuring (issue 15): with
 * `DELTASHIP_MEMORY_TRACE=1` in the environment, {@link traceMemory} writes one
 * line per phase to stderr: the wall-clock second (ss.mmm, to line phases of
 * threads up), the process's resident set now and at its peak so
 * far (`VmRSS`, `VmHWM` from /proc/self/status: every thread, so every worker),
 * and this thread's V8 heap (used / total) and external memory (ArrayBuffers
 * and the like) from `Deno.memoryUsage()`. Without the variable it does nothing
 * but one environment look-up. Nothing is kept between calls.
 *
 * @module
 */

const MIB = 1024 * 1024;

/** Whether tracing is on (`DELTASHIP_MEMORY_TRACE` set and not `0`). */
export function memoryTraceEnabled(): boolean {
  try {
    const v = Deno.env.get("DELTASHIP_MEMORY_TRACE");
    return v !== undefined && v !== "" && v !== "0";
  } catch {
    return false; // no env permission: no tracing
  }
}

/** The process's resident set now and its high-water mark, in bytes (0 where /proc is missing). */
export function processMemory(): { rss: number; peak: number } {
  try {
    const status = Deno.readTextFileSync("/proc/self/status");
    const kib = (key: string) => Number(new RegExp(`^${key}:\\s*(\\d+)`, "m").exec(status)?.[1] ?? 0) * 1024;
    return { rss: kib("VmRSS"), peak: kib("VmHWM") };
  } catch {
    return { rss: 0, peak: 0 };
  }
}

/**
 * Writes one trace line for `phase` (see the module doc) when tracing is on; a
 * function is called for the text only then (for phases named per file).
 */
export function traceMemory(phase: string | (() => string)): void {
  if (!memoryTraceEnabled()) return;
  if (typeof phase === "function") phase = phase();
  const { rss, peak } = processMemory();
  const m = Deno.memoryUsage();
  const thread = (globalThis as { name?: string }).name || "main";
  const f = (n: number) => (n / MIB).toFixed(1);
  console.error(
    `memory ${new Date().toISOString().slice(17, 23)} ${thread} ${phase}: rss ${f(rss)} peak ${f(peak)} heap ${
      f(m.heapUsed)
    }/${f(m.heapTotal)} ` +
      `external ${f(m.external)} MiB`,
  );
}
