/**
 * `deno task demo`: deltaship's main job on bundled testdata, with no network:
 * pull an old image, then pull an oci-delta that rebuilds the new image from it
 * (showing the bytes read for the delta against the full image's size), list the
 * images and verify the repository. Runs the real CLI in-process against a
 * throwaway repository and shows each command as it goes.
 */
import { main } from "../src/cli/main.ts";

const testdata = new URL("../testdata/oci-delta/edits/", import.meta.url).pathname;
const repo = await Deno.makeTempDir({ prefix: "deltaship-demo-" });
const encoder = new TextEncoder();
const io = {
  stdout: { isTerminal: false, write: (b: Uint8Array) => Deno.stdout.write(b).then(() => {}) },
  stderr: { isTerminal: false, write: (b: Uint8Array) => Deno.stderr.write(b).then(() => {}) },
  env: Deno.env.toObject(),
};

async function step(title: string, ...args: string[]): Promise<void> {
  await Deno.stdout.write(encoder.encode(`\n# ${title}\n$ deltaship ${args.join(" ")}\n`));
  const code = await main(["--repo", repo, ...args], io);
  if (code !== 0) throw new Error(`demo step failed (exit ${code}): deltaship ${args.join(" ")}`);
}

try {
  console.log(`Demo repository: ${repo} (removed at the end)`);
  await step("Pull the old image from an OCI layout", "pull", `oci:${testdata}old:old`, "app-v1");
  await step(
    "Pull the oci-delta: the new image is rebuilt from the old one, only the delta is read",
    "pull",
    `oci:${testdata}delta`,
    "app-v2",
  );
  await step("List what the repository holds", "images");
  await step("Verify every object and layer (each rebuilt layer against its diff_id)", "fsck");
} finally {
  await Deno.remove(repo, { recursive: true });
}
