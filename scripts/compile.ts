/**
 * `deno task compile [--target TRIPLE] [--output PATH]`: builds deltaship's
 * single executable with `deno compile`, with the worker module included and
 * exactly the permissions the tool needs. Without --target it builds for this
 * machine into `dist/deltaship`; with one, into `dist/deltaship-TRIPLE`.
 *
 * `deno compile` embeds the program in a runtime binary (denort) that it
 * downloads on first use for each target; set `DENORT_BIN` to a denort binary
 * on disk to use that instead (a `deno compile` feature, passed through here).
 *
 * @module
 */

/**
 * What the executable may do, fixed at compile time: read and write repositories
 * and image files anywhere the user points it, reach registries, read its
 * environment (DELTASHIP_*, HOME, XDG_DATA_HOME, registry credentials), ask
 * whether it runs as root (checkout applies ownership then), and call the C
 * library for what Deno has no API for (mknod and lsetxattr in checkout).
 * No subprocesses.
 */
export const PERMISSIONS: readonly string[] = [
  "--allow-read",
  "--allow-write",
  "--allow-net",
  "--allow-env",
  "--allow-sys=uid",
  "--allow-ffi",
];

/**
 * V8 flags the executable runs with (every isolate: the main thread's and each
 * worker's). A young generation of at most 1 MiB per semi-space instead of 16:
 * layer streams make a short-lived ArrayBuffer per chunk, whose backing stores
 * are freed only when the young generation is collected, so a large one let
 * ~40 MiB of dead chunks pile up per thread (issue 15: a pull peaked at 172 MiB
 * with V8's default, 118 MiB with this; CPU time unchanged). `bench/main.ts`
 * runs `deno run` with the same flags, so it measures what ships.
 */
export const V8_FLAGS: readonly string[] = ["--max-semi-space-size=1"];

/** Modules loaded at run time that `deno compile` cannot find by itself: Web Worker entry points. */
export const INCLUDES: readonly string[] = ["src/ops/layer_worker.ts"];

/** The targets the release workflow builds. */
export const RELEASE_TARGETS: readonly string[] = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
];

/** The `deno compile` arguments for a target (undefined: this machine) and output path. */
export function compileArgs(target?: string, output?: string): string[] {
  return [
    "compile",
    ...PERMISSIONS,
    `--v8-flags=${V8_FLAGS.join(",")}`,
    ...INCLUDES.flatMap((f) => ["--include", f]),
    ...(target ? ["--target", target] : []),
    "--output",
    output ?? (target ? `dist/deltaship-${target}` : "dist/deltaship"),
    "main.ts",
  ];
}

if (import.meta.main) {
  let target: string | undefined;
  let output: string | undefined;
  const args = [...Deno.args];
  while (args.length > 0) {
    const a = args.shift()!;
    if (a === "--target") target = args.shift();
    else if (a === "--output") output = args.shift();
    else {
      console.error(`compile: unknown argument ${JSON.stringify(a)} (expected --target TRIPLE, --output PATH)`);
      Deno.exit(2);
    }
  }
  const root = new URL("..", import.meta.url).pathname;
  const argv = compileArgs(target, output);
  console.error(`deno ${argv.join(" ")}`);
  const { code } = await new Deno.Command(Deno.execPath(), { args: argv, cwd: root }).spawn().status;
  Deno.exit(code);
}
