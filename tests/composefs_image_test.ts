/**
 * composefs images through the CLI: every vector's dumpfile made into its C
 * mkcomposefs image byte for byte by `create-image --from-dump`; each pulled
 * image made into a composefs image at pull (named in its record, kept as an
 * object, protected by gc, rebuilt by fsck), whose tree follows composefs-rs's
 * rules; `compute-id` = `fsverity digest` of `create-image`'s output;
 * `fsck.erofs` accepts every image; `dump` then `create-image --from-dump`
 * round-trips to the same bytes; bad input gets one line.
 */
import assert from "node:assert/strict";
import { deltaship, tempDir } from "./helpers/cli.ts";
import { expectedDigests, vectorNames, VECTORS } from "./helpers/composefs.ts";
import { CASES, FIXTURES } from "./helpers/fixtures.ts";
import { haveTools, run } from "./helpers/interop.ts";
import { writeManyEntriesDumpfile, writeManyEntriesImage } from "./helpers/many_entries.ts";
import { writeImage } from "./helpers/oci.ts";
import { buildTar } from "./helpers/tar.ts";
import { fsverityHex } from "../src/composefs/fsverity.ts";

const tools = haveTools("composefs images", "fsck.erofs", "fsverity");

async function fsckErofs(path: string): Promise<void> {
  if (tools) await run("fsck.erofs", path);
}

async function fsverityDigest(path: string): Promise<string> {
  return (await run("fsverity", "digest", "--compact", path)).trim();
}

Deno.test("create-image --from-dump reproduces every vector's v0 and v1 image byte for byte", async () => {
  await using dir = await tempDir();
  const expected = expectedDigests();
  for (const name of vectorNames()) {
    for (const v of ["0", "1"]) {
      const out = `${dir.path}/${name}.v${v}.img`;
      const r = await deltaship(
        `${dir.path}/unused`,
        "create-image",
        "--from-dump",
        `${VECTORS}${name}.dump`,
        out,
        "--erofs-version",
        v,
      );
      assert.equal(r.code, 0, r.stderr);
      const bytes = await Deno.readFile(out);
      assert.deepEqual(bytes, await Deno.readFile(`${VECTORS}${name}.v${v}.img`), `${name} v${v}`);
      assert.equal(fsverityHex(bytes), expected[`${name}.v${v}.img`].fsverity_sha256, `${name} v${v} digest`);
      assert.match(r.stdout, new RegExp(`id ${expected[`${name}.v${v}.img`].fsverity_sha256}`));
      await fsckErofs(out);
      if (tools) assert.equal(await fsverityDigest(out), expected[`${name}.v${v}.img`].fsverity_sha256);
    }
  }
});

Deno.test("a pulled image has a composefs image: compute-id, create-image, dump, fsck.erofs, the record, gc, fsck", async () => {
  await using dir = await tempDir();
  const repo = `${dir.path}/repo`;
  for (const name of CASES) {
    const pulled = await deltaship(repo, "pull", `oci:${FIXTURES}${name}/new:new`, name);
    assert.equal(pulled.code, 0, pulled.stderr);
    for (const v of ["0", "1"]) {
      const out = `${dir.path}/${name}.v${v}.img`;
      const created = await deltaship(repo, "create-image", name, out, "--erofs-version", v);
      assert.equal(created.code, 0, created.stderr);
      const id = await deltaship(repo, "compute-id", name, "--erofs-version", v);
      assert.equal(id.code, 0, id.stderr);
      assert.equal(id.stdout.trim(), fsverityHex(await Deno.readFile(out)), `${name} v${v}`);
      if (tools) assert.equal(id.stdout.trim(), await fsverityDigest(out));
      await fsckErofs(out);
    }
    // The record names the v1 image, which is an object of the repository.
    const inspect = await deltaship(repo, "--json", "compute-id", name);
    const { id } = JSON.parse(inspect.stdout);
    const records = [...Deno.readDirSync(`${repo}/images/sha256`)].map((e) =>
      JSON.parse(Deno.readTextFileSync(`${repo}/images/sha256/${e.name}`))
    );
    assert.ok(records.some((r) => r.composefs === id), `${name}: a record names ${id}`);
    assert.deepEqual(
      await Deno.readFile(`${repo}/objects/${id.slice(0, 2)}/${id.slice(2)}`),
      await Deno.readFile(`${dir.path}/${name}.v1.img`),
    );
    // dump, then create-image --from-dump, gives the same bytes.
    const dump = await deltaship(repo, "dump", name);
    assert.equal(dump.code, 0, dump.stderr);
    await Deno.writeFile(`${dir.path}/${name}.dump`, dump.stdoutBytes);
    const again = await deltaship(
      repo,
      "create-image",
      "--from-dump",
      `${dir.path}/${name}.dump`,
      `${dir.path}/again.img`,
    );
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(await Deno.readFile(`${dir.path}/again.img`), await Deno.readFile(`${dir.path}/${name}.v1.img`));
  }
  // The fixture trees whose vectors were made from their new images.
  for (const name of ["basic", "whiteouts", "fallback"]) {
    const dump = await deltaship(repo, "dump", name);
    assert.equal(dump.stdout, await Deno.readTextFile(`${VECTORS}${name}.dump`), name);
  }
  const fsck = await deltaship(repo, "fsck");
  assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
  // gc keeps a tagged image's composefs image and reclaims an untagged one's.
  const basicId = JSON.parse((await deltaship(repo, "--json", "compute-id", "basic")).stdout).id;
  const edits = JSON.parse((await deltaship(repo, "--json", "compute-id", "edits")).stdout).id;
  assert.equal((await deltaship(repo, "rm", "edits")).code, 0);
  assert.equal((await deltaship(repo, "gc")).code, 0);
  assert.ok(Deno.statSync(`${repo}/objects/${basicId.slice(0, 2)}/${basicId.slice(2)}`).isFile);
  assert.throws(() => Deno.statSync(`${repo}/objects/${edits.slice(0, 2)}/${edits.slice(2)}`), Deno.errors.NotFound);
  assert.equal((await deltaship(repo, "fsck")).code, 0);
});

/** Pulls a one-layer image of `entries` into `repo` as `name`; returns the dump of its composefs tree. */
async function dumpOf(dir: string, repo: string, name: string, entries: Parameters<typeof buildTar>[0]) {
  await writeImage(`${dir}/${name}`, { tag: "t", layers: [{ tar: buildTar(entries) }] });
  const pulled = await deltaship(repo, "pull", `oci:${dir}/${name}:t`, name);
  assert.equal(pulled.code, 0, pulled.stderr);
  const dump = await deltaship(repo, "dump", name);
  assert.equal(dump.code, 0, dump.stderr);
  return dump.stdout.trim().split("\n");
}

Deno.test("the composefs tree: the root takes /usr's metadata, /run is emptied with /usr's mtime; without /usr the root keeps its own", async () => {
  await using dir = await tempDir();
  const repo = `${dir.path}/repo`;
  const withUsr = await dumpOf(dir.path, repo, "usr", [
    { path: "./", type: "dir", mode: 0o700, mtime: 5 },
    { path: "usr/", type: "dir", mode: 0o751, uid: 7, gid: 8, mtime: 1000, pax: { "SCHILY.xattr.user.a": "b" } },
    { path: "run/", type: "dir", mode: 0o755, mtime: 2000 },
    { path: "run/stub", content: "x", mtime: 3000, pax: { mtime: "3000.75" } },
    { path: "etc/f", content: "small", mtime: 4000, pax: { mtime: "4000.5" } },
  ]);
  assert.equal(withUsr[0], "/ 4096 40751 5 7 8 0 1000.0 - - -", "user.a dropped: allowlist-only");
  assert.ok(withUsr.includes("/run 27 40755 2 0 0 0 1000.0 - - -"), withUsr.join("\n"));
  assert.ok(!withUsr.some((l) => l.startsWith("/run/")), "run emptied");
  assert.ok(withUsr.some((l) => l.startsWith("/etc/f 5 100644 1 0 0 0 4000.500000000 - small -")), "PAX nanoseconds");
  const keepUser = await deltaship(repo, "dump", "usr", "--xattrs", "keep-user-xattrs");
  assert.equal(keepUser.stdout.split("\n")[0], "/ 4096 40751 5 7 8 0 1000.0 - - - user.a=b");
  const noUsr = await dumpOf(dir.path, repo, "nousr", [
    { path: "./", type: "dir", mode: 0o700, mtime: 5 },
    { path: "run/", type: "dir", mode: 0o755, mtime: 2000 },
    { path: "run/stub", content: "x" },
  ]);
  assert.equal(noUsr[0].split(" ").slice(2, 8).join(" "), "40700 3 0 0 0 5.0");
  assert.equal(noUsr[1].split(" ").slice(0, 1).concat(noUsr[1].split(" ").slice(7, 8)).join(" "), "/run 2000.0");
  assert.equal(noUsr.length, 2);
});

Deno.test("composefs commands: bad input gets one line and writes nothing", async () => {
  await using dir = await tempDir();
  const repo = `${dir.path}/repo`;
  await Deno.writeTextFile(`${dir.path}/bad.dump`, "/ 0 40755 2 0 0 0 0.0 - - -\n/x 0 100644 1 0 0 zero 0.0 - - -\n");
  const bad = await deltaship(repo, "create-image", "--from-dump", `${dir.path}/bad.dump`, `${dir.path}/out.img`);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /dumpfile line 2/);
  assert.equal(bad.stderr.trim().split("\n").length, 1);
  assert.deepEqual([...Deno.readDirSync(dir.path)].map((e) => e.name).sort(), ["bad.dump"], "no OUT, no repository");
  const unknown = await deltaship(repo, "compute-id", "nosuch");
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /no repository at /); // read-only: it creates none
  const version = await deltaship(repo, "compute-id", "nosuch", "--erofs-version", "2");
  assert.equal(version.code, 2);
  assert.match(version.stderr, /--erofs-version must be 0 or 1/);
  const missing = await deltaship(repo, "create-image", "--from-dump", `${dir.path}/none.dump`, `${dir.path}/o.img`);
  assert.equal(missing.code, 1);
  assert.equal(missing.stderr.trim().split("\n").length, 1);
  assert.doesNotMatch(missing.stderr, /internal error|^\s+at /m);
});

Deno.test("fsck finds a damaged composefs image, and one that is not the image's", async () => {
  await using dir = await tempDir();
  const repo = `${dir.path}/repo`;
  for (const name of ["basic", "edits"]) {
    assert.equal((await deltaship(repo, "pull", `oci:${FIXTURES}${name}/new:new`, name)).code, 0);
  }
  const records = [...Deno.readDirSync(`${repo}/images/sha256`)].map((e) => {
    const path = `${repo}/images/sha256/${e.name}`;
    return { path, record: JSON.parse(Deno.readTextFileSync(path)) };
  });
  const [a, b] = records;
  // b's record names a's composefs image: intact, but not b's.
  const wrong = { ...b.record, composefs: a.record.composefs };
  await Deno.writeTextFile(b.path, JSON.stringify(wrong));
  let fsck = await deltaship(repo, "fsck");
  assert.equal(fsck.code, 1);
  assert.match(
    fsck.stdout + fsck.stderr,
    new RegExp(`composefs image ${a.record.composefs} differs from the one rebuilt, ${b.record.composefs}`),
  );
  await Deno.writeTextFile(b.path, JSON.stringify(b.record));
  assert.equal((await deltaship(repo, "fsck")).code, 0);
  // A damaged image object.
  const id = a.record.composefs;
  const path = `${repo}/objects/${id.slice(0, 2)}/${id.slice(2)}`;
  const bytes = await Deno.readFile(path);
  bytes[1500] ^= 1;
  await Deno.chmod(path, 0o644);
  await Deno.writeFile(path, bytes);
  fsck = await deltaship(repo, "fsck");
  assert.equal(fsck.code, 1);
  assert.match(fsck.stdout + fsck.stderr, new RegExp(`composefs image ${id} is missing or damaged`));
});

Deno.test("an image whose tree EROFS cannot hold is pulled without a composefs image; compute-id says why", async () => {
  await using dir = await tempDir();
  const repo = `${dir.path}/repo`;
  const long = "n".repeat(300);
  await writeImage(`${dir.path}/img`, {
    tag: "t",
    layers: [{ tar: buildTar([{ path: `usr/${long}`, content: "x" }]) }],
  });
  const pulled = await deltaship(repo, "pull", `oci:${dir.path}/img:t`, "long");
  assert.equal(pulled.code, 0, pulled.stderr);
  const [file] = [...Deno.readDirSync(`${repo}/images/sha256`)];
  assert.equal(JSON.parse(Deno.readTextFileSync(`${repo}/images/sha256/${file.name}`)).composefs, undefined);
  const id = await deltaship(repo, "compute-id", "long");
  assert.equal(id.code, 1);
  assert.match(id.stderr, /longer than 255 bytes/);
  assert.equal(id.stderr.trim().split("\n").length, 1);
  assert.equal((await deltaship(repo, "fsck")).code, 0);
});

Deno.test("composefs commands and pull keep the image's tree within --memory-limit, or fail in one line", async () => {
  await using dir = await tempDir();
  const repo = `${dir.path}/repo`;
  await writeManyEntriesImage(`${dir.path}/many`, "many", { dirs: 20, files: 1000 });
  await writeManyEntriesDumpfile(`${dir.path}/many.dump`, { dirs: 20, files: 1000 });
  const tight = await deltaship(repo, "pull", "--memory-limit", "1MiB", `oci:${dir.path}/many:many`, "many");
  assert.equal(tight.code, 1);
  assert.match(tight.stderr, /composefs tree of \d+ inodes and \d+ entries needs more than --memory-limit \(1 MiB\)/);
  assert.equal(tight.stderr.trim().split("\n").length, 1, tight.stderr);
  assert.equal((await deltaship(repo, "images")).stdout.includes("many"), false, "no image recorded");
  const pulled = await deltaship(repo, "pull", "--memory-limit", "64MiB", `oci:${dir.path}/many:many`, "many");
  assert.equal(pulled.code, 0, pulled.stderr);
  const id = (await deltaship(repo, "compute-id", "many")).stdout.trim();
  for (const args of [["compute-id", "many"], ["dump", "many"], ["create-image", "many", `${dir.path}/o.img`]]) {
    const r = await deltaship(repo, ...args, "--memory-limit", "1MiB");
    assert.equal(r.code, 1, args.join(" "));
    assert.match(r.stderr, /needs more than --memory-limit \(1 MiB\); raise it/);
    assert.equal((await deltaship(repo, ...args, "--memory-limit", "64MiB")).code, 0, args.join(" "));
  }
  const fromDump = await deltaship(repo, "create-image", "--from-dump", `${dir.path}/many.dump`, `${dir.path}/d.img`);
  assert.equal(fromDump.code, 0, fromDump.stderr);
  assert.match(fromDump.stdout, new RegExp(`id ${id}`), "the dumpfile of the same tree gives the same image");
  const tightDump = await deltaship(
    repo,
    "create-image",
    "--memory-limit",
    "1MiB",
    "--from-dump",
    `${dir.path}/many.dump`,
    `${dir.path}/e.img`,
  );
  assert.equal(tightDump.code, 1);
  assert.match(tightDump.stderr, /needs more than --memory-limit \(1 MiB\)/);
  assert.throws(() => Deno.statSync(`${dir.path}/e.img`), Deno.errors.NotFound);
});
