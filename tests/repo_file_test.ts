/**
 * Repository files are regular files, and are read only as such (issue 20,
 * items 2 and 3): a symbolic link, directory, FIFO or device where an object,
 * layer record, manifest, config, image record or tag belongs is refused by
 * every reader, naming its path, never followed out of the repository, never
 * read without bound and never waited on; fsck names each, gc names and keeps
 * it; the upgrade does not carry such an object over (nor reads more of one
 * than its record states); a pull after rm and gc replaces it.
 *
 * Readers that the old code could hang on (a FIFO, a device) run as child
 * processes under a watchdog, so that a regression fails instead of hanging.
 */
import assert from "node:assert/strict";
import { type CliResult, deltaship, deltashipCommand, tempDir } from "./helpers/cli.ts";
import { noise } from "./helpers/data.ts";
import { FIXTURES } from "./helpers/fixtures.ts";
import { objectHex, objectPathOf } from "./helpers/objects.ts";
import { writeImage } from "./helpers/oci.ts";
import { unpackFixtureV1 } from "./helpers/repo_v1.ts";
import { buildTar } from "./helpers/tar.ts";
import { isRoot } from "./helpers/unpack.ts";
import { Repository } from "../src/repo/repository.ts";
import { upgradeRepository } from "../src/repo/upgrade.ts";
import { readRecord } from "../src/repo/layer_record.ts";
import { treeSize } from "../src/util/fs.ts";

const dec = new TextDecoder();

/** Contents of the test image's files: one inlined in the composefs image, one copied whole, one streamed. */
const TINY = "tiny\n";
const MEDIUM = noise(300_000, 1);
const LARGE = noise(1_500_000, 2);

/** Pulls a one-layer image of {@link TINY}, {@link MEDIUM} and {@link LARGE} as `app` into `dir/repo`. */
async function pulled(dir: string): Promise<string> {
  const tar = buildTar([
    { path: "etc/tiny", content: TINY },
    { path: "data/medium.bin", content: MEDIUM },
    { path: "data/large.bin", content: LARGE },
  ]);
  await writeImage(`${dir}/layout`, { tag: "app", layers: [{ tar, compression: "none" }] });
  const repo = `${dir}/repo`;
  const r = await deltaship(repo, "pull", `oci:${dir}/layout:app`, "app");
  assert.equal(r.code, 0, r.stderr);
  return repo;
}

/** Something that is not a regular file, put where a file belongs. */
interface Kind {
  /** How fsck and the readers describe it ("a symbolic link", ...). */
  name: string;
  /** Replaces the file at `path` (whose bytes are `bytes`) with it; `outside` is a directory outside the repository. */
  make(path: string, bytes: Uint8Array, outside: string): Promise<void>;
  /** Whether reading it could block or never end on the old code (run it in a child process, under a watchdog). */
  hangs: boolean;
}

async function run(cmd: string, ...args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stderr: "piped" }).output();
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")}: ${dec.decode(out.stderr)}`);
}

/** A symbolic link to a copy, outside the repository, of the same bytes: the attack of item 2. */
const SYMLINK: Kind = {
  name: "a symbolic link",
  hangs: false,
  async make(path, bytes, outside) {
    const copy = `${outside}/copy-${crypto.randomUUID()}`;
    await Deno.writeFile(copy, bytes);
    await Deno.remove(path);
    await Deno.symlink(copy, path);
  },
};

const KINDS: Kind[] = [
  SYMLINK,
  {
    name: "a directory",
    hangs: false,
    async make(path) {
      await Deno.remove(path);
      await Deno.mkdir(path);
      await Deno.writeTextFile(`${path}/inside`, "x");
    },
  },
  {
    name: "a FIFO",
    hangs: true,
    async make(path) {
      await Deno.remove(path);
      await run("mkfifo", path);
    },
  },
  {
    name: "a character device", // /dev/zero's numbers: reading it never ends
    hangs: true,
    async make(path) {
      await Deno.remove(path);
      await run("mknod", path, "c", "1", "5");
    },
  },
];

/** Longest a child process may run before it counts as hung (a correct run takes about a second). */
const WATCHDOG_MS = 120_000;

/** Runs deltaship as a child process, killed (and the test failed) if it has not ended within {@link WATCHDOG_MS}. */
async function watched(args: string[]): Promise<CliResult> {
  const child = deltashipCommand(args).spawn();
  let hung = false;
  const timer = setTimeout(() => {
    hung = true;
    child.kill("SIGKILL");
  }, WATCHDOG_MS);
  try {
    const out = await child.output();
    assert.ok(!hung, `deltaship ${args.join(" ")} hung (killed after ${WATCHDOG_MS / 1000} s)`);
    return { code: out.code, stdout: dec.decode(out.stdout), stdoutBytes: out.stdout, stderr: dec.decode(out.stderr) };
  } finally {
    clearTimeout(timer);
  }
}

/** Exit 1 and one line on stderr matching `message`, no stack trace. */
function assertFailed(r: CliResult, message: RegExp, what: string): void {
  assert.equal(r.code, 1, `${what}: exit status; stderr: ${r.stderr}`);
  assert.equal(r.stderr.trim().split("\n").length, 1, `${what}: one line: ${r.stderr}`);
  assert.match(r.stderr, message, what);
  assert.doesNotMatch(r.stderr, /internal error|^\s+at /m, what);
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** No symbolic link anywhere under `dir`. */
function assertNoSymlinks(dir: string): void {
  for (const e of Deno.readDirSync(dir)) {
    assert.ok(!e.isSymlink, `${dir}/${e.name} is a symbolic link`);
    if (e.isDirectory) assertNoSymlinks(`${dir}/${e.name}`);
  }
}

for (const kind of KINDS) {
  Deno.test(`an object that is ${kind.name}: every reader refuses it naming its path; fsck and gc name it`, async () => {
    if (kind.name === "a character device" && !isRoot()) {
      if (Deno.env.get("REQUIRE_INTEROP") === "1") throw new Error("mknod needs root, and REQUIRE_INTEROP=1");
      return console.log("SKIPPED object as a character device: mknod needs root");
    }
    await using tmp = await tempDir();
    const repo = await pulled(tmp.path);
    const path = objectPathOf(repo, MEDIUM);
    const rel = path.slice(repo.length + 1);
    await kind.make(path, MEDIUM, tmp.path);
    const cli = (...args: string[]) => kind.hangs ? watched(["--repo", repo, ...args]) : deltaship(repo, ...args);
    const refused = new RegExp(`^deltaship: .*${escape(path)} is ${kind.name}, not a regular file; run fsck$`, "m");

    for (const hardlink of [[], ["--hardlink"]]) {
      const r = await cli("checkout", ...hardlink, "app", `${tmp.path}/co`);
      assertFailed(r, refused, `checkout ${hardlink.join("")}`);
      assert.equal(await Deno.lstat(`${tmp.path}/co`).catch(() => null), null, "nothing checked out");
    }
    // export and layer read exactly the size the record states: a device's bytes then fail the layer's diff_id.
    const exported = await cli("export", "app", `oci:${tmp.path}/out`);
    const diffId = JSON.parse((await deltaship(repo, "--json", "inspect", "app")).stdout).layers[0].diffId;
    const layer = await cli("layer", diffId);
    const stored = kind.name === "a character device" ? /damaged|digest mismatch/ : refused;
    assertFailed(exported, stored, "export");
    assertFailed(layer, stored, "layer");

    const fsck = await cli("fsck");
    assert.equal(fsck.code, 1, fsck.stderr);
    assert.match(
      fsck.stdout,
      new RegExp(`^object ${objectHex(MEDIUM)}: ${escape(rel)} is ${kind.name}, not a regular file$`, "m"),
    );
    const gc = await cli("gc");
    assert.equal(gc.code, 0, gc.stderr);
    assert.match(
      gc.stderr,
      new RegExp(`^warning: ${escape(rel)} is ${kind.name}, not a regular file; left in place$`, "m"),
    );
    assert.ok(await Deno.lstat(path), "gc left it in place");

    // Repaired by removing the image and pulling it again: the object is stored again, a regular file.
    assert.equal((await deltaship(repo, "rm", "app")).code, 0);
    if (kind.name === "a directory") await Deno.remove(path, { recursive: true }); // a rename cannot replace one
    assert.equal((await cli("gc")).code, 0);
    const again = await deltaship(repo, "pull", `oci:${tmp.path}/layout:app`, "app");
    assert.equal(again.code, 0, again.stderr);
    assert.ok((await Deno.lstat(path)).isFile, "the object is a regular file again");
    const clean = await deltaship(repo, "fsck");
    assert.equal(clean.code, 0, clean.stdout);
  });
}

Deno.test("objects read through symbolic links by no other reader: create-delta, delta pull, composefs image, mount", async () => {
  await using tmp = await tempDir();
  const repo = await pulled(tmp.path);
  // create-delta encodes the new image's layers (in workers) reading their objects.
  const other = noise(200_000, 3);
  const tar = buildTar([{ path: "etc/tiny", content: TINY }, { path: "data/other.bin", content: other }]);
  await writeImage(`${tmp.path}/layout`, { tag: "app2", layers: [{ tar }] });
  assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/layout:app2`, "app2")).code, 0);
  await SYMLINK.make(objectPathOf(repo, other), other, tmp.path);
  const linked = (content: string | Uint8Array) =>
    new RegExp(`${escape(objectPathOf(repo, content))} is a symbolic link, not a regular file`);
  assertFailed(
    await deltaship(repo, "create-delta", "repo:app", "repo:app2", `oci:${tmp.path}/d`),
    linked(other),
    "create-delta",
  );

  // The composefs image inlines small files' contents, read from their objects.
  await SYMLINK.make(objectPathOf(repo, TINY), new TextEncoder().encode(TINY), tmp.path);
  assertFailed(await deltaship(repo, "compute-id", "app"), linked(TINY), "compute-id");

  // A delta is rebuilt against the source image's objects (positional reads, delta/source_files.ts).
  const fixture = `${tmp.path}/fixture`;
  assert.equal((await deltaship(fixture, "pull", `oci:${FIXTURES}/basic/old:old`, "old")).code, 0);
  for (const fan of Deno.readDirSync(`${fixture}/objects`)) {
    for (const e of Deno.readDirSync(`${fixture}/objects/${fan.name}`)) {
      const path = `${fixture}/objects/${fan.name}/${e.name}`;
      const bytes = Deno.readFileSync(path);
      if (bytes.length > 64) await SYMLINK.make(path, bytes, tmp.path); // not those the composefs image inlines
    }
  }
  const delta = await deltaship(fixture, "pull", `oci:${FIXTURES}/basic/delta`, "new");
  assertFailed(
    delta,
    new RegExp(`${escape(fixture)}/objects/[0-9a-f/]+ is a symbolic link, not a regular file`),
    "delta",
  );
});

Deno.test("mount: a composefs image that is a symbolic link is not mounted", async () => {
  const why = !isRoot() ? "needs root" : Deno.build.os !== "linux" ? "not Linux" : undefined;
  if (why) {
    if (Deno.env.get("REQUIRE_INTEROP") === "1") throw new Error(`mount test ${why}, and REQUIRE_INTEROP=1`);
    return console.log(`SKIPPED mount of a symlinked composefs image: ${why}`);
  }
  await using tmp = await tempDir();
  const repo = await pulled(tmp.path);
  const id = JSON.parse(
    Deno.readTextFileSync(
      `${repo}/images/sha256/${
        JSON.parse((await deltaship(repo, "--json", "inspect", "app")).stdout).manifest.slice(7)
      }.json`,
    ),
  ).composefs;
  const path = `${repo}/objects/${id.slice(0, 2)}/${id.slice(2)}`;
  await SYMLINK.make(path, Deno.readFileSync(path), tmp.path);
  const mountinfo = () => Deno.readTextFileSync("/proc/self/mountinfo");
  const before = mountinfo();
  await Deno.mkdir(`${tmp.path}/mnt`);
  const r = await deltaship(repo, "mount", "app", `${tmp.path}/mnt`);
  if (r.code === 0) await deltaship(repo, "umount", `${tmp.path}/mnt`);
  assertFailed(r, new RegExp(`${escape(path)} is a symbolic link, not a regular file`), "mount");
  assert.equal(mountinfo(), before, "nothing mounted");
});

Deno.test("layer records, manifests, configs, image records and tags are not read through symbolic links", async () => {
  await using tmp = await tempDir();
  const repo = await pulled(tmp.path);
  const info = JSON.parse((await deltaship(repo, "--json", "inspect", "app")).stdout);
  const at = (rel: string) => ({ rel, path: `${repo}/${rel}` });
  const files = {
    record: at(`layers/sha256/${info.layers[0].diffId.slice(7)}`),
    manifest: at(`blobs/sha256/${info.manifest.slice(7)}`),
    image: at(`images/sha256/${info.manifest.slice(7)}.json`),
    tag: at("tags/app"),
  };
  for (const { path } of Object.values(files)) await SYMLINK.make(path, Deno.readFileSync(path), tmp.path);
  const linked = (path: string) => new RegExp(`${escape(path)} is a symbolic link, not a regular file`);
  assertFailed(await deltaship(repo, "layer", info.layers[0].diffId), linked(files.record.path), "layer");
  assertFailed(await deltaship(repo, "inspect", "app"), linked(files.tag.path), "inspect by tag");
  assertFailed(
    await deltaship(repo, "inspect", `@${info.manifest}`),
    /is a symbolic link, not a regular file/,
    "record",
  );
  const images = await deltaship(repo, "images");
  assert.equal(images.code, 0, images.stderr);
  assert.match(
    images.stderr,
    new RegExp(`^warning: skipping image record ${escape(files.image.rel)}: it is a symbolic link`, "m"),
  );
  const fsck = await deltaship(repo, "fsck");
  assert.equal(fsck.code, 1);
  for (const { rel } of Object.values(files)) {
    const named = rel.startsWith("tags/")
      ? /^tag app: is malformed: it is not a regular file/m
      : new RegExp(`${escape(rel)}:? is a symbolic link`, "m");
    assert.match(fsck.stdout, named, rel);
  }
});

/** The fixture's largest version-1 object: edits-old's only layer needs it. */
function largestV1Object(repo: string): string {
  const objects = [...Deno.readDirSync(`${repo}/objects/sha256`)].flatMap((fan) =>
    [...Deno.readDirSync(`${repo}/objects/sha256/${fan.name}`)].map((e) =>
      `${repo}/objects/sha256/${fan.name}/${e.name}`
    )
  );
  return objects.sort((a, b) => Deno.statSync(b).size - Deno.statSync(a).size)[0];
}

const EDITS_LAYER = "sha256:ac45ffe542db5bac8698a43c24a58f35c60c51f14fed4fd090ac6f9c7fd4ba9a";
const BASIC_OLD = "8df5fabcce265afc1e620c82ef220dc45c919dc42ad71ba5a9163d24df072df2";

/** The SHA-256 (hex) of the first object a version-1 layer record names. */
async function firstObject(record: string): Promise<string> {
  for await (const item of readRecord(record, 1)) if (item.type === "object") return item.hex;
  throw new Error(`${record} names no object`);
}

Deno.test("upgrade: an object replaced by a symbolic link to an outside copy is not carried over, nor is one in its new name's place", async () => {
  await using tmp = await tempDir();
  const repo = await unpackFixtureV1(tmp.path);
  const largest = largestV1Object(repo);
  await SYMLINK.make(largest, Deno.readFileSync(largest), tmp.path);
  // An object of basic-old's bottom layer: its new name (objects/XX/<62 hex>) taken in advance by a symbolic link.
  const basicOld = JSON.parse(Deno.readTextFileSync(`${repo}/images/sha256/${BASIC_OLD}.json`));
  const sha = await firstObject(`${repo}/layers/sha256/${basicOld.layers[0].diffId.slice(7)}`);
  const bytes = Deno.readFileSync(`${repo}/objects/sha256/${sha.slice(0, 2)}/${sha}`);
  const hex = objectHex(bytes);
  await Deno.mkdir(`${repo}/objects/${hex.slice(0, 2)}`);
  await Deno.writeFile(`${tmp.path}/copy-other`, bytes);
  await Deno.symlink(`${tmp.path}/copy-other`, `${repo}/objects/${hex.slice(0, 2)}/${hex.slice(2)}`);

  const r = await deltaship(repo, "upgrade");
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /4 layer records rewritten, .*; 1 damaged layer dropped/);
  assertNoSymlinks(`${repo}/objects`);
  assert.ok(Deno.lstatSync(`${repo}/objects/${hex.slice(0, 2)}/${hex.slice(2)}`).isFile);
  const fsck = await deltaship(repo, "fsck");
  assert.equal(fsck.code, 1);
  assert.match(fsck.stdout, new RegExp(`^layer ${EDITS_LAYER}: is missing$`, "m"));
  assert.equal(fsck.stdout.trim().split("\n").length, 3, fsck.stdout); // that layer, its image, the summary
  const co = await deltaship(repo, "checkout", "--hardlink", "edits-old", `${tmp.path}/co`);
  assert.equal(co.code, 1);
  assert.equal(await Deno.lstat(`${tmp.path}/co`).catch(() => null), null);
  assert.equal((await deltaship(repo, "checkout", "--hardlink", "basic-old", `${tmp.path}/co2`)).code, 0);
  assertNoSymlinks(`${tmp.path}/co2`); // basic-old has no symbolic links of its own
});

/** What an object of the version-1 fixture is replaced with, to be read by the upgrade. */
const UNBOUNDED: { name: string; root?: boolean; make(path: string): Promise<void> }[] = [
  {
    name: "a symbolic link to /dev/zero",
    make: (path) => Deno.remove(path).then(() => Deno.symlink("/dev/zero", path)),
  },
  {
    name: "/dev/zero's device node",
    root: true,
    make: (path) => Deno.remove(path).then(() => run("mknod", path, "c", "1", "5")),
  },
  { name: "a 50 GB sparse file", make: (path) => Deno.truncate(path, 50e9) },
];

for (const { name, root, make } of UNBOUNDED) {
  Deno.test(`upgrade: an object that is ${name} is read no further than its recorded size, and dropped`, async () => {
    if (root && !isRoot()) {
      if (Deno.env.get("REQUIRE_INTEROP") === "1") throw new Error("mknod needs root, and REQUIRE_INTEROP=1");
      return console.log(`SKIPPED upgrade of ${name}: mknod needs root`);
    }
    await using tmp = await tempDir();
    const dir = await unpackFixtureV1(tmp.path);
    const largest = largestV1Object(dir);
    const bound = await treeSize(`${dir}/objects/sha256`); // every object read once, at most
    await make(largest);
    let read = 0;
    const progress = {
      start() {},
      finish() {},
      advance(_: string, n: number) {
        read += n;
        if (read > bound) throw new Error(`the upgrade read ${read} bytes, more than the ${bound} its records state`);
      },
    };
    const repo = await Repository.open(dir, { legacy: true });
    try {
      const summary = await upgradeRepository(repo, progress);
      assert.deepEqual(summary?.dropped, [EDITS_LAYER]);
    } finally {
      await repo.close();
    }
    assert.ok(read <= bound - 300_000, `read ${read} bytes`);
  });
}

Deno.test("upgrade: an object that is a FIFO is not waited on, and dropped", async () => {
  await using tmp = await tempDir();
  const repo = await unpackFixtureV1(tmp.path);
  const largest = largestV1Object(repo);
  await Deno.remove(largest);
  await run("mkfifo", largest);
  const r = await watched(["--repo", repo, "upgrade"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /1 damaged layer dropped/);
});
