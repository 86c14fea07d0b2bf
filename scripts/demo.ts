/**
 * `deno task demo`: deltaship's main job on bundled testdata, with no network:
 * pull an old image, then pull an oci-delta that rebuilds the new image from it
 * (showing the bytes read for the delta against the full image's size), list the
 * images, check the new one out and verify the repository. Runs the real CLI
 * in-process against a throwaway repository and shows each command as it goes.
 * `--bin PATH` runs every step with that executable instead (how CI smoke-tests
 * the compiled binary).
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
  await step("Pull the old image from an OCI layout", "pull", `oci:${testdata}old:old`, "app-v1");
  await step(
    "Pull the oci-delta: the new image is rebuilt from the old one, only the delta is read",
    "pull",
    `oci:${testdata}delta`,
    "app-v2",
  );
  await step("List what the repository holds", "images");
  await step("Check the new image's root filesystem out", "checkout", "app-v2", `${work}/rootfs`);
  await step("Verify every object and layer (each rebuilt layer against its diff_id)", "fsck");
} finally {
  await Deno.remove(work, { recursive: true });
}
