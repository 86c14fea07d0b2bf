/**
 * deltaship: keeps OCI images in a local content-addressed repository and
 * updates them with oci-delta artifacts. This is the executable's entry point.
 *
 * @module
 */
import { main } from "./src/cli/main.ts";

/** The terminal's width, when the runtime can tell. */
function consoleColumns(): number | undefined {
  try {
    return Deno.consoleSize().columns || undefined;
  } catch {
    return undefined;
  }
}

/** The real process's standard streams (stdin read only by commands that take it), environment, and an interrupt signal for SIGINT and SIGTERM. */
function processIO() {
  const interrupt = new AbortController();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    try {
      Deno.addSignalListener(signal, () => interrupt.abort());
    } catch { /* not supported on this platform */ }
  }
  const out = (s: typeof Deno.stdout | typeof Deno.stderr) => ({
    isTerminal: s.isTerminal(),
    columns: s.isTerminal() ? consoleColumns() : undefined,
    async write(bytes: Uint8Array) {
      let off = 0;
      while (off < bytes.length) off += await s.write(bytes.subarray(off));
    },
  });
  return {
    stdout: out(Deno.stdout),
    stderr: out(Deno.stderr),
    stdin: Deno.stdin.readable,
    env: Deno.env.toObject(),
    interrupt: interrupt.signal,
  };
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args, processIO()));
}
