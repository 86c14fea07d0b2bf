/**
 * `deno task demo`: deltaship's main job on bundled testdata, with no network.
 * Runs the real CLI in-process against a throwaway repository and shows each
 * command as it goes. `--bin PATH` runs every step with that executable instead
 * (how CI smoke-tests the compiled binary).
 */
import { main } from "../src/cli/main.ts";

const testdata = new URL("../testdata/oci-delta/edits/", import.meta.url).pathname;
const binIndex = Deno.args.indexOf("--bin");
const bin = binIndex >= 0 ? Deno.args[binIndex + 1] : undefined;
if (binIndex >= 0 && !bin) throw new Error("demo: --bin needs the path of a deltaship executable");
const work = await Deno.makeTempDir({ prefix: "deltaship-demo-" });
const repo = `${work}/repo`;
const encoder = new TextEncoder();
const io = {
  stdout: { isTerminal: false, write: (b: Uint8Array) => Deno.stdout.write(b).then(() => {}) },
  stderr: { isTerminal: false, write: (b: Uint8Array) => Deno.stderr.write(b).then(() => {}) },
  env: Deno.env.toObject(),
};

async function step(title: string, ...args: string[]): Promise<void> {
  await Deno.stdout.write(encoder.encode(`\n# ${title}\n$ deltaship ${args.join(" ")}\n`));
  const argv = ["--repo", repo, ...args];
  const code = bin
    ? (await new Deno.Command(bin, { args: argv, stdout: "inherit", stderr: "inherit" }).output()).code
    : await main(argv, io);
  if (code !== 0) throw new Error(`demo step failed (exit ${code}): deltaship ${args.join(" ")}`);
}

try {
  console.log(`Demo directory: ${work} (removed at the end)${bin ? `; running ${bin}` : ""}`);
  await step("Pull the old image from an OCI layout", "pull", `oci:${testdata}old:old`, "app");
  await step("Pull the new image too", "pull", `oci:${testdata}new:new`, "app-new");
  await step("List what the repository holds", "images");
  await step(
    "Export the new image as a zstd oci-archive",
    "export",
    "app-new",
    `oci-archive:${work}/app.tar`,
    "--compression",
    "zstd",
  );
  await step("Check its root filesystem out", "checkout", "app-new", `${work}/rootfs`);
  await step("Forget the old image", "untag", "app");
  await step("Collect what no tag reaches any more", "gc");
  await step("Pull the exported archive back: same config digest", "pull", `oci-archive:${work}/app.tar`, "roundtrip");
  await step("Verify every object and layer", "fsck");
} finally {
  await Deno.remove(work, { recursive: true });
}
