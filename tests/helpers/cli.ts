/**
 * Test helper: runs the deltaship CLI in-process (fast, with captured output) or
 * as a real child process (for signals and concurrency).
 */
import { main } from "../../src/cli/main.ts";
import { concat } from "../../src/util/streams.ts";

/** What a run printed and returned. */
export interface CliResult {
  code: number;
  stdout: string;
  stdoutBytes: Uint8Array;
  stderr: string;
}

const dec = new TextDecoder();

/** Runs `deltaship --repo REPO ARGS...` in this process. */
export async function deltaship(repo: string, ...args: string[]): Promise<CliResult> {
  return await runCli(["--repo", repo, ...args]);
}

/** Runs the CLI with exactly `args` in this process. */
export async function runCli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const out: Uint8Array[] = [];
  const err: Uint8Array[] = [];
  const code = await main(args, {
    stdout: { isTerminal: false, write: (b) => (out.push(b.slice()), Promise.resolve()) },
    stderr: { isTerminal: false, write: (b) => (err.push(b.slice()), Promise.resolve()) },
    env: { HOME: Deno.env.get("HOME"), ...env },
  });
  const stdoutBytes = concat(out);
  return { code, stdout: dec.decode(stdoutBytes), stdoutBytes, stderr: dec.decode(concat(err)) };
}

/**
 * The command that starts deltaship as a child process. The child inherits the test's environment except `CI`
 * (under which `--progress auto` prints plain progress lines), so that it sees what an in-process run sees: a test
 * that wants CI's behaviour passes `CI` in `options.env`.
 */
export function deltashipCommand(args: string[], options: Deno.CommandOptions = {}): Deno.Command {
  const main = new URL("../../main.ts", import.meta.url).pathname;
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--quiet", main, ...args],
    stdout: "piped",
    stderr: "piped",
    ...options,
    env: { CI: "", ...options.env },
  });
}

/** Runs deltaship as a child process to completion. */
export async function deltashipProcess(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const out = await deltashipCommand(args, { env }).output();
  return { code: out.code, stdout: dec.decode(out.stdout), stdoutBytes: out.stdout, stderr: dec.decode(out.stderr) };
}

/** A fresh temporary directory, removed by the returned disposer. */
export async function tempDir(prefix = "deltaship-test-"): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }).catch(() => {}) };
}
