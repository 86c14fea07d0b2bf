/**
 * Test helper: external tools (skopeo, umoci, zstd, registry, oci-delta). A test
 * that needs a missing tool is skipped with a visible message, or fails when
 * REQUIRE_INTEROP=1 (as in CI).
 */

const found = new Map<string, string | undefined>();

/** The path of `tool` on PATH, or undefined. */
export function which(tool: string): string | undefined {
  if (found.has(tool)) return found.get(tool);
  let path: string | undefined;
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      if (Deno.statSync(`${dir}/${tool}`).isFile) {
        path = `${dir}/${tool}`;
        break;
      }
    } catch { /* not here */ }
  }
  found.set(tool, path);
  return path;
}

/**
 * True when every tool is available. When one is missing: with REQUIRE_INTEROP=1
 * this throws (the test fails); otherwise it prints why the test is skipped.
 */
export function haveTools(test: string, ...tools: string[]): boolean {
  const missing = tools.filter((t) => !which(t));
  if (missing.length === 0) return true;
  const msg = `${test}: needs ${missing.join(", ")} (not on PATH)`;
  if (Deno.env.get("REQUIRE_INTEROP") === "1") throw new Error(`${msg}, and REQUIRE_INTEROP=1`);
  console.log(`SKIPPED ${msg}`);
  return false;
}

/** Runs a command, failing with its stderr when it fails; returns stdout. */
export async function run(cmd: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed (${out.code}): ${new TextDecoder().decode(out.stderr)}`);
  }
  return text;
}
