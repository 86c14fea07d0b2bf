/**
 * `deltaship mount` and `umount` on the kernel: the mounted tree of the fixture
 * images, a delta-pulled image and the bench corpus image equals `checkout`'s
 * and `umoci raw unpack`'s (paths, types, modes, owners, sizes and contents,
 * link targets, file mtimes, user xattrs, hardlink groups); a corrupted object
 * is detected as the verity mode promises (here, without fs-verity: not by the
 * kernel, by fsck; `--verity require` refused); unmounting leaves nothing
 * mounted. Needs root, erofs and overlay, and Linux 6.5 or later (data-only
 * overlay layers): skipped visibly otherwise (failing under REQUIRE_INTEROP=1).
 */
import assert from "node:assert/strict";
import { deltaship, tempDir } from "./helpers/cli.ts";
import { CASES, FIXTURES } from "./helpers/fixtures.ts";
import { canMount, haveTools, whyNoMounts } from "./helpers/interop.ts";
import { writeImage } from "./helpers/oci.ts";
import { randomPair } from "./helpers/random_images.ts";
import { describeTree, type TreeOptions } from "./helpers/tree.ts";
import { umociUnpack } from "./helpers/unpack.ts";
import { openMountApi } from "../src/util/mount.ts";

const why = canMount("deltaship mount") ? undefined : whyNoMounts();
const umoci = !why && haveTools("deltaship mount vs umoci", "umoci");

const OPTIONS: TreeOptions = { owner: true, mtime: "nondir", links: true, xattrs: true };

function mountinfo(): string {
  return Deno.readTextFileSync("/proc/self/mountinfo");
}

/** Mounts `image` of `repo` at a fresh directory, compares it with checkout's (and umoci's) tree, unmounts. */
async function checkMounted(dir: string, repo: string, image: string, layout?: [string, string]): Promise<void> {
  const target = await Deno.makeTempDir({ dir, prefix: "mnt-" });
  const m = await deltaship(repo, "--json", "mount", image, target);
  assert.equal(m.code, 0, m.stderr);
  const { id, erofsSource } = JSON.parse(m.stdout) as { id: string; erofsSource: "file" | "loop" };
  try {
    assert.match(mountinfo(), new RegExp(` ${target} .* - overlay `));
    assert.doesNotMatch(mountinfo(), new RegExp(` - erofs [^\\n]*${image}`)); // the EROFS mount is attached nowhere
    const co = `${target}-checkout`;
    const c = await deltaship(repo, "checkout", image, co);
    assert.equal(c.code, 0, c.stderr);
    const mounted = await describeTree(target, OPTIONS);
    assert.deepEqual(mounted, await describeTree(co, OPTIONS), `${image}: mount = checkout`);
    if (layout && umoci) {
      await umociUnpack(layout[0], layout[1], `${target}-umoci`);
      assert.deepEqual(mounted, await describeTree(`${target}-umoci`, OPTIONS), `${image}: mount = umoci`);
    }
    assert.ok(Object.keys(mounted).length > 0);
  } finally {
    const u = await deltaship(repo, "umount", target);
    assert.equal(u.code, 0, u.stderr);
  }
  assert.doesNotMatch(mountinfo(), new RegExp(` ${target} `), "nothing left mounted at the target");
  // The EROFS mount was never attached, so mountinfo cannot show it (and other tests' mounts come and go meanwhile):
  // where it sat on a loop device, that device must be gone with the overlay (autoclear).
  if (erofsSource === "loop") {
    const object = `${repo}/objects/${id.slice(0, 2)}/${id.slice(2)}`;
    const loops = await new Deno.Command("losetup", { args: ["-j", object], stdout: "piped" }).output();
    assert.equal(new TextDecoder().decode(loops.stdout).trim(), "", "no loop device left on the image");
  }
}

Deno.test({
  name: "mount: fixture images and a delta-pulled image show checkout's and umoci's tree; umount leaves nothing",
  ignore: why !== undefined,
  async fn() {
    await using dir = await tempDir();
    for (const name of CASES) {
      const repo = `${dir.path}/${name}`;
      assert.equal((await deltaship(repo, "pull", `oci:${FIXTURES}${name}/new:new`, "new")).code, 0);
      await checkMounted(dir.path, repo, "new", [`${FIXTURES}${name}/new`, "new"]);
      const deltaRepo = `${dir.path}/${name}-delta`;
      assert.equal((await deltaship(deltaRepo, "pull", `oci:${FIXTURES}${name}/old:old`, "old")).code, 0);
      const d = await deltaship(deltaRepo, "--json", "pull", `oci:${FIXTURES}${name}/delta`, "fromdelta");
      assert.equal(d.code, 0, d.stderr);
      assert.ok(JSON.parse(d.stdout).delta, "pulled through the delta");
      await checkMounted(dir.path, deltaRepo, "fromdelta", [`${FIXTURES}${name}/new`, "new"]);
    }
  },
});

const CORPUS = new URL("../bench/.cache/corpus/new", import.meta.url).pathname;
const haveCorpus = (() => {
  try {
    return Deno.statSync(`${CORPUS}/index.json`).isFile;
  } catch {
    return false;
  }
})();
if (!why && !haveCorpus) {
  console.log(
    Deno.env.get("REQUIRE_INTEROP") === "1"
      ? "mount: no bench/.cache/corpus (run the bench once to build it): using a generated stand-in image"
      : "SKIPPED mount of the bench corpus image: no bench/.cache/corpus (run the bench once to build it)",
  );
}

Deno.test({
  name: "mount: the bench corpus new image (or, without the corpus under REQUIRE_INTEROP=1, a generated stand-in)",
  ignore: why !== undefined || (!haveCorpus && Deno.env.get("REQUIRE_INTEROP") !== "1"),
  async fn() {
    await using dir = await tempDir();
    const repo = `${dir.path}/repo`;
    let layout: [string, string] = [CORPUS, "new"];
    if (!haveCorpus) {
      const pair = randomPair(12, 3);
      await writeImage(`${dir.path}/standin`, { tag: "new", layers: pair.newLayers.map((tar) => ({ tar })) });
      layout = [`${dir.path}/standin`, "new"];
    }
    const p = await deltaship(repo, "pull", `oci:${layout[0]}:${layout[1]}`, "new");
    assert.equal(p.code, 0, p.stderr);
    await checkMounted(dir.path, repo, "new", layout);
  },
});

Deno.test({
  name: "mount: a corrupted object is detected as the verity mode promises; bad input gets one line",
  ignore: why !== undefined,
  async fn() {
    await using dir = await tempDir();
    const repo = `${dir.path}/repo`;
    assert.equal((await deltaship(repo, "pull", `oci:${FIXTURES}basic/new:new`, "new")).code, 0);
    const target = `${dir.path}/mnt`;
    await Deno.mkdir(target);
    const oneLine = (r: { code: number; stderr: string }, code: number, message: RegExp) => {
      assert.equal(r.code, code, r.stderr);
      assert.match(r.stderr, message);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert.doesNotMatch(r.stderr, /internal error|^\s+at /m);
    };
    // This machine's filesystems have no fs-verity: require is refused, and nothing is mounted.
    const format = JSON.parse(Deno.readTextFileSync(`${repo}/deltaship-repo.json`));
    if (!format.verity) {
      oneLine(await deltaship(repo, "mount", "new", target, "--verity", "require"), 1, /objects have no fs-verity/);
      assert.doesNotMatch(mountinfo(), new RegExp(` ${target} `));
    }
    oneLine(await deltaship(repo, "mount", "new", target, "--verity", "maybe"), 2, /--verity must be/);
    oneLine(await deltaship(repo, "mount", "nosuch", target), 1, /no image tagged "nosuch"/);
    oneLine(await deltaship(repo, "mount", "new", `${dir.path}/missing`), 1, /does not exist/);
    await Deno.writeTextFile(`${dir.path}/full/x`, "x").catch(async () => {
      await Deno.mkdir(`${dir.path}/full`);
      await Deno.writeTextFile(`${dir.path}/full/x`, "x");
    });
    oneLine(await deltaship(repo, "mount", "new", `${dir.path}/full`), 2, /is not empty/);
    oneLine(await deltaship(repo, "umount", target), 1, /is not a mount point/);

    // Without fs-verity the kernel reads a corrupted object as it is; fsck names it.
    const blob = "4d/8f257a40e0f62d8799aac2bec3552c9c89d7a437320e6fd691e7dada9cf993"; // data/blob.bin
    const path = `${repo}/objects/${blob}`;
    const bytes = await Deno.readFile(path);
    bytes[0] ^= 0xff;
    await Deno.chmod(path, 0o644);
    await Deno.writeFile(path, bytes);
    const m = await deltaship(repo, "mount", "new", target, "--verity", "off");
    assert.equal(m.code, 0, m.stderr);
    try {
      assert.deepEqual(await Deno.readFile(`${target}/data/blob.bin`), bytes, "no fs-verity: read as it is");
    } finally {
      assert.equal((await deltaship(repo, "umount", target)).code, 0);
    }
    const fsck = await deltaship(repo, "fsck");
    assert.equal(fsck.code, 1);
    assert.match(fsck.stdout + fsck.stderr, new RegExp(`object ${blob.replace("/", "")}`));
    // A damaged composefs image is refused before anything is mounted.
    const record = [...Deno.readDirSync(`${repo}/images/sha256`)].map((e) =>
      JSON.parse(Deno.readTextFileSync(`${repo}/images/sha256/${e.name}`))
    )[0];
    const imagePath = `${repo}/objects/${record.composefs.slice(0, 2)}/${record.composefs.slice(2)}`;
    const image = await Deno.readFile(imagePath);
    image[2000] ^= 1;
    await Deno.writeFile(imagePath, image);
    oneLine(await deltaship(repo, "mount", "new", target), 1, /composefs image .* is damaged; run deltaship fsck/);
    assert.doesNotMatch(mountinfo(), new RegExp(` ${target} `));
  },
});

Deno.test({
  name:
    "mount API: an EROFS image on an autoclear loop device (older kernels' way) mounts, and the device frees itself",
  ignore: why !== undefined,
  async fn() {
    await using dir = await tempDir();
    const img = `${dir.path}/basic.img`;
    await Deno.copyFile(new URL("../testdata/composefs/basic.v1.img", import.meta.url).pathname, img);
    const target = `${dir.path}/mnt`;
    await Deno.mkdir(target);
    const api = openMountApi()!;
    try {
      const loop = api.loopDevice(img);
      let mfd: number;
      try {
        const fd = api.fsopen("erofs");
        try {
          api.set(fd, "source", loop.path);
          api.set(fd, "ro");
          mfd = api.create(fd, "EROFS");
        } finally {
          api.closeFd(fd);
        }
      } finally {
        api.closeFd(loop.fd);
      }
      const backing = `/sys/block/${loop.path.slice(5)}/loop/backing_file`;
      assert.equal(Deno.readTextFileSync(backing).trim(), img, "bound while mounted");
      api.attach(mfd, target);
      api.closeFd(mfd);
      assert.equal(Deno.readTextFileSync(`${target}/etc/hostname`), "testhost\n");
      api.unmount(target);
      assert.doesNotMatch(mountinfo(), new RegExp(` ${target} `));
      let bound = true;
      for (let i = 0; i < 100 && bound; i++) {
        try {
          Deno.readTextFileSync(backing);
          await new Promise((r) => setTimeout(r, 20));
        } catch {
          bound = false;
        }
      }
      assert.ok(!bound, `${loop.path} cleared after the unmount (autoclear)`);
    } finally {
      api.close();
    }
  },
});

Deno.test({
  name: "mount: an image whose record names no composefs image (made before them) is mounted from one made for it",
  ignore: why !== undefined,
  async fn() {
    await using dir = await tempDir();
    const repo = `${dir.path}/repo`;
    assert.equal((await deltaship(repo, "pull", `oci:${FIXTURES}basic/new:new`, "new")).code, 0);
    for (const e of Deno.readDirSync(`${repo}/images/sha256`)) {
      const path = `${repo}/images/sha256/${e.name}`;
      const { composefs: _, ...old } = JSON.parse(Deno.readTextFileSync(path));
      Deno.writeTextFileSync(path, JSON.stringify(old));
    }
    assert.equal((await deltaship(repo, "gc")).code, 0); // the composefs image object is gone now
    await checkMounted(dir.path, repo, "new", [`${FIXTURES}basic/new`, "new"]);
    assert.deepEqual([...Deno.readDirSync(`${repo}/tmp`)], [], "the image made for the mount is not left in tmp/");
  },
});

/** The root files a repository holds for its mounts. */
function rootFiles(repo: string): string[] {
  try {
    return [...Deno.readDirSync(`${repo}/mounts`)].map((e) => e.name);
  } catch {
    return [];
  }
}

Deno.test({
  name: "mount + rm + gc: the mounted image's files are still read; rm says it stays; umount then gc frees it",
  ignore: why !== undefined,
  async fn() {
    await using dir = await tempDir();
    const repo = `${dir.path}/repo`;
    assert.equal((await deltaship(repo, "pull", `oci:${FIXTURES}basic/new:new`, "app")).code, 0);
    assert.equal((await deltaship(repo, "checkout", "app", `${dir.path}/co`)).code, 0);
    const want = await describeTree(`${dir.path}/co`, OPTIONS);
    const target = `${dir.path}/mnt`;
    await Deno.mkdir(target);
    const m = await deltaship(repo, "mount", "app", target);
    assert.equal(m.code, 0, m.stderr);
    try {
      const rm = await deltaship(repo, "rm", "app");
      assert.equal(rm.code, 0, rm.stderr);
      const gc = await deltaship(repo, "--json", "gc");
      assert.equal(gc.code, 0, gc.stderr);
      assert.deepEqual(await describeTree(target, OPTIONS), want, "every file of the mount still reads");
      assert.equal(JSON.parse(gc.stdout).removed.objects, 0, "no object the mount reads was removed");
      assert.match(
        rm.stderr,
        new RegExp(`is mounted at ${target}: what it holds stays in the repository until it is unmounted`),
      );
      assert.equal(rootFiles(repo).length, 1, "mount recorded a root");
    } finally {
      const u = await deltaship(repo, "umount", target);
      assert.equal(u.code, 0, u.stderr);
    }
    assert.deepEqual(rootFiles(repo), [], "umount removed the root");
    const gc = await deltaship(repo, "--json", "gc");
    assert.ok(JSON.parse(gc.stdout).removed.objects > 0, "after the umount, gc frees what only the mount kept");
    for (const fan of Deno.readDirSync(`${repo}/objects`)) {
      assert.deepEqual([...Deno.readDirSync(`${repo}/objects/${fan.name}`)], [], "no object is left");
    }
  },
});

Deno.test({
  name: "umount: a mount deltaship did not make is refused; not a mount point exits 1; busy is said in words",
  ignore: why !== undefined,
  async fn() {
    await using dir = await tempDir();
    const repo = `${dir.path}/repo`;
    assert.equal((await deltaship(repo, "pull", `oci:${FIXTURES}basic/new:new`, "app")).code, 0);
    const oneLine = (r: { code: number; stderr: string }, message: RegExp) => {
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, message);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert.doesNotMatch(r.stderr, /internal error/);
    };
    const foreign = `${dir.path}/tmpfs`;
    await Deno.mkdir(foreign);
    const t = await new Deno.Command("mount", { args: ["-t", "tmpfs", "-o", "size=1m", "tmpfs", foreign] }).output();
    assert.ok(t.success, new TextDecoder().decode(t.stderr));
    try {
      oneLine(
        await deltaship(repo, "umount", foreign),
        /holds a tmpfs mount \(source "tmpfs"\) that deltaship mount did not make; deltaship umount leaves it alone/,
      );
      assert.match(mountinfo(), new RegExp(` ${foreign} .* - tmpfs `), "the tmpfs is still mounted");
    } finally {
      await new Deno.Command("umount", { args: [foreign] }).output();
    }
    oneLine(await deltaship(repo, "umount", foreign), /is not a mount point/);
    oneLine(await deltaship(repo, "umount", `${dir.path}/missing`), /does not exist/);

    const target = `${dir.path}/mnt`;
    await Deno.mkdir(target);
    assert.equal((await deltaship(repo, "mount", "app", target)).code, 0);
    const open = await Deno.open(`${target}/etc/hostname`);
    try {
      oneLine(
        await deltaship(repo, "umount", target),
        new RegExp(
          `${target} is busy: a process has a file open or its working directory under it; stop it ` +
            `\\(fuser -vm ${target} lists them\\), then run deltaship umount again`,
        ),
      );
      assert.match(mountinfo(), new RegExp(` ${target} `), "still mounted");
      assert.equal(rootFiles(repo).length, 1, "and still protected");
    } finally {
      open.close();
    }
    const u = await deltaship(repo, "umount", target);
    assert.equal(u.code, 0, u.stderr);
    assert.doesNotMatch(mountinfo(), new RegExp(` ${target} `));
  },
});

Deno.test({
  name: "mount roots: one whose mount went without deltaship umount is dropped by the next gc (kept by --dry-run)",
  ignore: why !== undefined,
  async fn() {
    await using dir = await tempDir();
    const repo = `${dir.path}/repo`;
    assert.equal((await deltaship(repo, "pull", `oci:${FIXTURES}basic/new:new`, "app")).code, 0);
    const target = `${dir.path}/mnt`;
    await Deno.mkdir(target);
    assert.equal((await deltaship(repo, "mount", "app", target)).code, 0);
    assert.equal((await deltaship(repo, "rm", "app")).code, 0);
    const u = await new Deno.Command("umount", { args: [target] }).output(); // not through deltaship
    assert.ok(u.success);
    assert.equal(rootFiles(repo).length, 1);
    const dry = await deltaship(repo, "--json", "gc", "--dry-run");
    assert.ok(JSON.parse(dry.stdout).removed.objects > 0, "the stale root protects nothing");
    assert.equal(rootFiles(repo).length, 1, "--dry-run removes nothing");
    const gc = await deltaship(repo, "--json", "gc");
    assert.ok(JSON.parse(gc.stdout).removed.objects > 0);
    assert.deepEqual(rootFiles(repo), [], "the stale root is gone");
  },
});
