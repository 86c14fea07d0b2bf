import assert from "node:assert/strict";
import { gc } from "../src/repo/gc.ts";
import { Repository } from "../src/repo/repository.ts";
import { sha256 } from "../src/util/digest.ts";
import { deltaship, deltashipCommand, tempDir } from "./helpers/cli.ts";
import { sampleTar, writeImage } from "./helpers/oci.ts";
import { buildTar } from "./helpers/tar.ts";
import { noise } from "./helpers/data.ts";

/** Every file under `dir` with its size, and the total. */
function listing(dir: string): { files: string[]; bytes: number } {
  const files: string[] = [];
  let bytes = 0;
  const walk = (rel: string) => {
    for (const e of Deno.readDirSync(`${dir}${rel}`)) {
      const st = Deno.lstatSync(`${dir}${rel}/${e.name}`);
      if (st.isDirectory) {
        walk(`${rel}/${e.name}`);
      } else {
        files.push(`${rel}/${e.name} ${st.size}`);
        bytes += st.size;
      }
    }
  };
  walk("");
  return { files: files.sort(), bytes };
}

Deno.test("gc removes what no tag reaches and keeps what tags do; --dry-run changes nothing", async () => {
  await using tmp = await tempDir();
  const l = `${tmp.path}/l`;
  const shared = buildTar([{ path: "shared.bin", content: noise(100_000, 1) }]);
  const a = await writeImage(l, { tag: "a", layers: [{ tar: shared }, { tar: sampleTar("a") }] });
  const b = await writeImage(l, { tag: "b", layers: [{ tar: shared }, { tar: sampleTar("b") }] });
  const c = await writeImage(l, { tag: "c", layers: [{ tar: buildTar([{ path: "c", content: noise(5000, 3) }]) }] });
  const repo = `${tmp.path}/repo`;
  for (const tag of ["a", "b", "c"]) assert.equal((await deltaship(repo, "pull", `oci:${l}:${tag}`)).code, 0);
  assert.equal((await deltaship(repo, "tag", "a", "a-too")).code, 0);
  assert.equal((await deltaship(repo, "rm", "b")).code, 0); // record gone, content left for gc
  assert.equal((await deltaship(repo, "untag", "c")).code, 0); // record left, no tag reaches it
  // A temporary directory in use by a live process (its lock held): gc must leave it.
  await Deno.mkdir(`${repo}/tmp/live-1`);
  await Deno.writeTextFile(`${repo}/tmp/live-1/partial`, "in use");
  using live = await Deno.open(`${repo}/tmp/live-1.lock`, { write: true, create: true });
  await live.lock(true);

  const before = listing(repo);
  const dry = await deltaship(repo, "--json", "gc", "--dry-run");
  assert.equal(dry.code, 0, dry.stderr);
  assert.deepEqual(listing(repo), before);
  const planned = JSON.parse(dry.stdout);
  assert.equal(planned.dryRun, true);

  const r = await deltaship(repo, "--json", "gc");
  assert.equal(r.code, 0, r.stderr);
  const done = JSON.parse(r.stdout);
  assert.deepEqual({ ...done, dryRun: true }, planned);
  // b's and c's manifests and configs, b's own layer and c's, and their objects.
  assert.deepEqual(done.removed, { images: 1, blobs: 4, layers: 2, objects: done.removed.objects, tempDirs: 0 });
  assert.ok(done.removed.objects >= 4);
  assert.equal(done.kept, 1);
  assert.equal(before.bytes - listing(repo).bytes, done.bytes);

  for (const diffId of a.diffIds) assert.equal(sha256((await deltaship(repo, "layer", diffId)).stdoutBytes), diffId);
  for (const diffId of [b.diffIds[1], c.diffIds[0]]) assert.equal((await deltaship(repo, "layer", diffId)).code, 1);
  assert.equal((await deltaship(repo, "inspect", `@${c.manifest}`)).code, 1);
  assert.equal((await deltaship(repo, "fsck")).code, 0);
  assert.equal(Deno.readTextFileSync(`${repo}/tmp/live-1/partial`), "in use");
  const images = JSON.parse((await deltaship(repo, "--json", "images")).stdout);
  assert.deepEqual(images.map((i: { tags: string[] }) => i.tags), [["a", "a-too"]]);
  // Nothing left to collect.
  const again = await deltaship(repo, "gc");
  assert.equal(
    again.stdout,
    "Removed 0 images, 0 manifests and configs, 0 layers, 0 objects, 0 temporary directories: 0 B freed (1 image kept)\n",
  );
});

Deno.test("gc while a pull is in flight: both succeed and the repository checks clean", async () => {
  await using tmp = await tempDir();
  const l = `${tmp.path}/l`;
  const big = await writeImage(l, {
    tag: "big",
    layers: [{ tar: buildTar([{ path: "huge.bin", content: noise(64 << 20, 11) }]), compression: "none" }],
  });
  await writeImage(l, { tag: "old", layers: [{ tar: sampleTar("old") }] });
  // Each attempt must succeed; at least one must show the overlap (gc queued behind the
  // pull's lock). A loaded machine may start gc too late once in a while: then try again.
  let overlapped = false;
  for (let attempt = 0; attempt < 4 && !overlapped; attempt++) {
    overlapped = await gcDuringPull(`${tmp.path}/repo-${attempt}`, l, big.manifest, big.diffIds[0]);
  }
  assert.ok(overlapped, "gc never got to wait for a pull in flight");
});

/** Runs gc while a pull of `big` runs; checks both; says whether gc was seen waiting for the pull. */
async function gcDuringPull(repo: string, l: string, manifest: string, diffId: string): Promise<boolean> {
  assert.equal((await deltaship(repo, "pull", `oci:${l}:old`)).code, 0);
  assert.equal((await deltaship(repo, "untag", "old")).code, 0); // garbage for gc to find

  const pull = deltashipCommand(["--repo", repo, "--json", "-j", "1", "pull", `oci:${l}:big`]).spawn();
  const deadline = Date.now() + 30_000;
  // A file over 1 MiB anywhere under tmp/ (objects are staged a level down, per layer).
  const bigFileUnder = (dir: string): boolean =>
    [...Deno.readDirSync(dir)].some((e) =>
      e.isDirectory ? bigFileUnder(`${dir}/${e.name}`) : Deno.statSync(`${dir}/${e.name}`).size > 1 << 20
    );
  const writing = () => {
    try {
      return bigFileUnder(`${repo}/tmp`);
    } catch {
      return false;
    }
  };
  while (!writing()) {
    assert.ok(Date.now() < deadline, "the pull never started writing");
    await new Promise((r) => setTimeout(r, 2));
  }
  const gc = deltashipCommand(["--repo", repo, "--json", "gc"]).spawn();
  let pullDone = false;
  const pulling = pull.output().finally(() => pullDone = true);
  // Proof that they overlapped: the kernel lists gc as waiting for the lock the pull holds.
  let overlapped = false;
  const waiting = () =>
    Deno.readTextFileSync("/proc/locks").split("\n").some((l) =>
      /-> FLOCK +ADVISORY +WRITE +(\d+)/.exec(l)?.[1] === String(gc.pid)
    );
  if (await Deno.stat("/proc/locks").catch(() => null)) {
    while (!pullDone && !(overlapped = waiting())) await new Promise((r) => setTimeout(r, 2));
  } else {
    overlapped = true; // no /proc/locks to prove it with (not Linux)
  }
  const [pulled, gcOut] = await Promise.all([pulling, gc.output()]);
  const dec = new TextDecoder();
  assert.equal(pulled.code, 0, dec.decode(pulled.stderr));
  assert.equal(gcOut.code, 0, dec.decode(gcOut.stderr));
  assert.equal(JSON.parse(dec.decode(pulled.stdout)).manifest, manifest);
  const result = JSON.parse(dec.decode(gcOut.stdout));
  if (overlapped) {
    // gc ran after the pull: it kept the new image and removed the untagged one.
    assert.equal(result.kept, 1);
    assert.equal(result.removed.images, 1);
  }
  assert.equal((await deltaship(repo, "fsck")).code, 0);
  assert.equal(sha256((await deltaship(repo, "layer", diffId)).stdoutBytes), diffId);
  assert.equal((await deltaship(repo, "--json", "images")).stdout.includes(manifest), true);
  assert.deepEqual([...Deno.readDirSync(`${repo}/tmp`)], []);
  return overlapped;
}

Deno.test("gc sweeps the temporary files of processes that are gone, never a live one's", async () => {
  await using tmp = await tempDir();
  const repo = await Repository.open(`${tmp.path}/repo`);
  const t = `${repo.root}/tmp`;
  await Deno.mkdir(`${t}/123-dead`); // killed: its lock file is there, but nobody holds it
  await Deno.writeFile(`${t}/123-dead/blob`, new Uint8Array(1000));
  await Deno.writeTextFile(`${t}/123-dead.lock`, "");
  await Deno.mkdir(`${t}/456-nolock`); // no lock file at all
  await Deno.writeTextFile(`${t}/.789-new.lock-new`, ""); // killed before publishing its lock
  await Deno.mkdir(`${t}/999-live`);
  using live = await Deno.open(`${t}/999-live.lock`, { write: true, create: true });
  await live.lock(true);
  repo.tempPath(); // this process's own, locked by the repository itself
  const all = () => [...Deno.readDirSync(t)].map((e) => e.name).sort();
  const before = all();
  assert.equal(before.length, 8);
  const dry = await gc(repo, { dryRun: true });
  assert.equal(dry.removed.tempDirs, 2);
  assert.ok(dry.bytes >= 1000);
  assert.deepEqual(all(), before);
  const done = await gc(repo);
  assert.deepEqual(done, { ...dry, dryRun: false });
  const own = before.filter((n) => n.startsWith(`${Deno.pid}-`));
  assert.deepEqual(all(), ["999-live", "999-live.lock", ...own].sort());
  await repo.close();
  assert.deepEqual(all(), ["999-live", "999-live.lock"]);
});
