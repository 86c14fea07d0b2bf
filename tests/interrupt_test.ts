import assert from "node:assert/strict";
import { deltaship, deltashipCommand, tempDir } from "./helpers/cli.ts";
import { sampleTar, writeImage } from "./helpers/oci.ts";
import { buildTar } from "./helpers/tar.ts";
import { largestFile, noise } from "./helpers/data.ts";

async function waitFor(what: string, ready: () => boolean): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!ready()) {
    assert.ok(Date.now() < deadline, `${what} never happened`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Runs deltaship, sends SIGINT once `ready` holds, and returns its exit status and stderr. */
async function interrupt(args: string[], ready: () => boolean): Promise<{ code: number; stderr: string }> {
  const child = deltashipCommand(args).spawn();
  await waitFor(`${args.join(" ")}: the moment to interrupt`, ready);
  child.kill("SIGINT");
  const out = await child.output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("SIGINT during a pull removes its temporary files at once and leaves no image", async () => {
  await using tmp = await tempDir();
  await writeImage(`${tmp.path}/l`, {
    tag: "big",
    layers: [{ tar: buildTar([{ path: "big.bin", content: noise(100 << 20, 11) }]), compression: "none" }],
  });
  const repo = `${tmp.path}/repo`;
  await writeImage(`${tmp.path}/l`, { tag: "small", layers: [{ tar: sampleTar() }] });
  assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/l:small`)).code, 0);
  const r = await interrupt(
    ["--repo", repo, "-j", "1", "pull", `oci:${tmp.path}/l:big`],
    () => largestFile(`${repo}/tmp`) > (4 << 20),
  );
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, /^deltaship: interrupted; partial output removed$/m);
  assert.deepEqual([...Deno.readDirSync(`${repo}/tmp`)], [], "no temporary directory left");
  const images = JSON.parse((await deltaship(repo, "--json", "images")).stdout);
  assert.deepEqual(images.map((i: { names: string[] }) => i.names), [["small"]]);
  assert.equal((await deltaship(repo, "fsck")).code, 0);
});

Deno.test("SIGINT during an export to an oci-archive leaves no archive and no partial file", async () => {
  await using tmp = await tempDir();
  await writeImage(`${tmp.path}/l`, {
    tag: "big",
    layers: [{ tar: buildTar([{ path: "big.bin", content: noise(96 << 20, 5) }]), compression: "none" }],
  });
  const repo = `${tmp.path}/repo`;
  assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/l:big`)).code, 0);
  await Deno.mkdir(`${tmp.path}/out`);
  const partial = () => [...Deno.readDirSync(`${tmp.path}/out`)].map((e) => e.name);
  const r = await interrupt(
    ["--repo", repo, "-j", "1", "export", "big", `oci-archive:${tmp.path}/out/big.tar`, "--compression", "gzip"],
    () => largestFile(`${tmp.path}/out`) > (1 << 20),
  );
  assert.equal(r.code, 130, r.stderr);
  assert.deepEqual(partial(), [], "nothing left in the destination directory");
  assert.deepEqual([...Deno.readDirSync(`${repo}/tmp`)], []);
});

Deno.test("SIGINT during create-delta leaves no delta, no partial layout and no temporary files", async () => {
  await using tmp = await tempDir();
  const base = noise(12 << 20, 21);
  const changed = base.slice();
  for (let i = 0; i < changed.length; i += 100_000) changed[i] ^= 0xff;
  await writeImage(`${tmp.path}/l`, { tag: "old", layers: [{ tar: buildTar([{ path: "big.bin", content: base }]) }] });
  await writeImage(`${tmp.path}/l`, {
    tag: "new",
    layers: [{ tar: buildTar([{ path: "big.bin", content: changed }]) }],
  });
  const repo = `${tmp.path}/repo`;
  assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/l:old`, "old")).code, 0);
  assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/l:new`, "new")).code, 0);
  await Deno.mkdir(`${tmp.path}/out`);
  const inTmp = () =>
    [...Deno.readDirSync(`${repo}/tmp`)].filter((d) => d.isDirectory).flatMap((d) => [
      ...Deno.readDirSync(`${repo}/tmp/${d.name}`),
    ]);
  const r = await interrupt(
    ["--repo", repo, "-j", "1", "create-delta", "repo:old", "repo:new", `oci:${tmp.path}/out/delta`],
    () => {
      try {
        return inTmp().length > 0; // the tar-diff is being encoded
      } catch {
        return false;
      }
    },
  );
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, /^deltaship: interrupted; partial output removed$/m);
  assert.deepEqual([...Deno.readDirSync(`${tmp.path}/out`)], [], "no partial layout");
  assert.deepEqual([...Deno.readDirSync(`${repo}/tmp`)], [], "no temporary files");
  assert.equal((await deltaship(repo, "fsck")).code, 0);
});
