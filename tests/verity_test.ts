/**
 * fs-verity on stored objects. The kernels these tests run on have no fs-verity
 * on their filesystems (FS_IOC_ENABLE_VERITY fails with EOPNOTSUPP), so what is
 * pinned here is the fallback: a new repository records `verity: false`, one
 * that records `true` on such a filesystem turns it off silently at its next
 * object, fsck says when the record and the filesystem disagree, and the ioctls
 * are the kernel's (strace names them). Where `fsverity enable` works, the
 * tests check the other way round.
 */
import assert from "node:assert/strict";
import { deltaship, tempDir } from "./helpers/cli.ts";
import { haveTools, run } from "./helpers/interop.ts";
import { sampleTar, writeImage } from "./helpers/oci.ts";
import { objectFiles } from "./helpers/objects.ts";
import { openFsVerity } from "../src/util/posix.ts";

/** Whether `fsverity enable` works on a file in `dir` (the oracle for what the repository must record). */
async function fsHasVerity(dir: string): Promise<boolean> {
  const file = `${dir}/probe-${crypto.randomUUID()}`;
  await Deno.writeTextFile(file, "probe\n");
  const out = await new Deno.Command("fsverity", { args: ["enable", file], stdout: "null", stderr: "piped" }).output();
  await Deno.remove(file);
  if (!out.success) assert.match(new TextDecoder().decode(out.stderr), /not supported|Inappropriate ioctl/);
  return out.success;
}

function format(repo: string): { version: number; verity: boolean } {
  return JSON.parse(Deno.readTextFileSync(`${repo}/deltaship-repo.json`));
}

Deno.test({
  name: "verity: a new repository records whether its filesystem gives files fs-verity",
  ignore: !haveTools("verity", "fsverity"),
  async fn() {
    await using tmp = await tempDir();
    await writeImage(`${tmp.path}/l`, { tag: "a", layers: [{ tar: sampleTar("a") }] });
    const repo = `${tmp.path}/repo`;
    const r = await deltaship(repo, "pull", `oci:${tmp.path}/l:a`, "a");
    assert.deepEqual([r.code, r.stderr], [0, ""]);
    const supported = await fsHasVerity(tmp.path);
    assert.deepEqual(format(repo), { format: "deltaship-repo", version: 2, verity: supported });
    if (supported) {
      for (const [hex, path] of objectFiles(repo)) {
        assert.equal((await run("fsverity", "measure", path)).split(" ")[0], `sha256:${hex}`);
      }
    }
    assert.equal((await deltaship(repo, "fsck")).code, 0);
  },
});

Deno.test({
  name: "verity: a repository recording fs-verity on a filesystem without it falls back silently at its next object",
  ignore: !haveTools("verity", "fsverity"),
  async fn() {
    await using tmp = await tempDir();
    if (await fsHasVerity(tmp.path)) return console.log("SKIPPED: this filesystem has fs-verity");
    await writeImage(`${tmp.path}/l`, { tag: "a", layers: [{ tar: sampleTar("a") }] });
    await writeImage(`${tmp.path}/l`, { tag: "b", layers: [{ tar: sampleTar("b") }] });
    const repo = `${tmp.path}/repo`;
    assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/l:a`, "a")).code, 0);
    // As if the repository had been made on a filesystem with fs-verity, then moved here.
    Deno.writeTextFileSync(`${repo}/deltaship-repo.json`, '{"format":"deltaship-repo","version":2,"verity":true}\n');
    const fsck = await deltaship(repo, "fsck");
    assert.equal(fsck.code, 1);
    assert.match(fsck.stdout, /^repository: records fs-verity on its objects, but its filesystem has no fs-verity$/m);

    const r = await deltaship(repo, "pull", `oci:${tmp.path}/l:b`, "b");
    assert.deepEqual([r.code, r.stderr], [0, ""], "no word of it");
    assert.equal(format(repo).verity, false, "recorded: a mount must not require verity");
    const after = await deltaship(repo, "fsck");
    assert.equal(after.code, 0, after.stdout);
    assert.equal((await deltaship(repo, "--json", "images")).code, 0);
  },
});

Deno.test("verity: the kernel calls report an unsupported filesystem as such, and a missing file as missing", async () => {
  await using tmp = await tempDir();
  const fs = openFsVerity();
  assert.ok(fs, "FFI is available to the tests");
  try {
    const file = `${tmp.path}/f`;
    Deno.writeTextFileSync(file, "content\n");
    const enabled = await fs.enable(file);
    const supported = haveTools("verity", "fsverity") ? await fsHasVerity(tmp.path) : enabled === "enabled";
    assert.equal(enabled, supported ? "enabled" : "unsupported");
    const measured = fs.measure(file);
    if (supported) {
      assert.ok(measured instanceof Uint8Array && measured.length === 32);
      assert.equal(await fs.enable(file), "enabled", "enabling twice is fine");
    } else assert.equal(measured, "unsupported");
    await assert.rejects(fs.enable(`${tmp.path}/missing`), Deno.errors.NotFound);
  } finally {
    fs.close();
  }
});

Deno.test({
  name: "verity: the ioctls made are FS_IOC_ENABLE_VERITY and FS_IOC_MEASURE_VERITY (as strace decodes them)",
  ignore: !haveTools("verity", "strace"),
  async fn() {
    await using tmp = await tempDir();
    const script = `${tmp.path}/calls.ts`;
    const posix = new URL("../src/util/posix.ts", import.meta.url).href;
    Deno.writeTextFileSync(
      script,
      `import { openFsVerity } from ${JSON.stringify(posix)};\n` +
        `const fs = openFsVerity()!;\nDeno.writeTextFileSync(Deno.args[0], "x");\n` +
        `await fs.enable(Deno.args[0]);\nfs.measure(Deno.args[0]);\n`,
    );
    const out = await new Deno.Command("strace", {
      args: ["-f", "-e", "trace=ioctl", Deno.execPath(), "run", "-A", "--quiet", script, `${tmp.path}/f`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    const trace = new TextDecoder().decode(out.stderr);
    assert.match(trace, /ioctl\(\d+, FS_IOC_ENABLE_VERITY, 0x[0-9a-f]+\)/);
    assert.match(trace, /ioctl\(\d+, FS_IOC_MEASURE_VERITY, 0x[0-9a-f]+\)/);
  },
});
