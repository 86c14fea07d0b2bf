/**
 * `repo/mount_roots.ts` and the mount table it judges roots by
 * (`util/mount.ts`), without mounting anything (the kernel cases are in
 * mount_test.ts): which roots gc keeps, drops or cannot judge, and how
 * mountinfo is read.
 */
import assert from "node:assert/strict";
import { mountSource } from "../src/repo/mount_roots.ts";
import { parseMountInfo, readMountTable, topMountAt } from "../src/util/mount.ts";
import { deltaship, tempDir } from "./helpers/cli.ts";
import { FIXTURES } from "./helpers/fixtures.ts";

Deno.test("mountinfo: escapes undone, optional fields skipped, the topmost of stacked mounts found", () => {
  const text = [
    "21 1 0:20 / / rw - ext4 /dev/sda1 rw",
    "30 21 0:30 / /mnt/with\\040space rw,relatime shared:5 master:2 - tmpfs tmp\\134fs rw",
    "31 30 0:31 / /mnt/with\\040space ro - overlay deltaship:" + "a".repeat(64) + " ro,lowerdir+=/proc/self/fd/7",
    "garbage",
  ].join("\n");
  const mounts = parseMountInfo(text);
  assert.equal(mounts.length, 3);
  assert.deepEqual(mounts[1], {
    id: 30,
    parent: 21,
    mountPoint: "/mnt/with space",
    fsType: "tmpfs",
    source: "tmp\\fs",
  });
  assert.equal(topMountAt(mounts, "/mnt/with space")?.id, 31, "the overlay mounted over the tmpfs is on top");
  assert.equal(topMountAt(mounts, "/mnt"), undefined);
  const table = readMountTable();
  if (Deno.build.os === "linux") {
    assert.ok(table, "this process's mount table is read");
    assert.match(table.namespace, /^mnt:\[\d+\]$/);
    assert.ok(topMountAt(table.mounts, "/"), "the root is mounted");
  }
});

Deno.test("gc and mount roots: a stale root and a damaged one are dropped (not by --dry-run); one of another namespace keeps its image", async () => {
  await using tmp = await tempDir();
  const repo = `${tmp.path}/repo`;
  const pulled = await deltaship(repo, "--json", "pull", `oci:${FIXTURES}basic/new:new`, "app");
  assert.equal(pulled.code, 0, pulled.stderr);
  const record = JSON.parse(
    Deno.readTextFileSync(`${repo}/images/sha256/${[...Deno.readDirSync(`${repo}/images/sha256`)][0].name}`),
  );
  const root = (target: string, namespace?: string) =>
    JSON.stringify({ target, source: mountSource(record.composefs), namespace, image: record });
  await Deno.mkdir(`${repo}/mounts`);
  const unmounted = await Deno.makeTempDir({ dir: tmp.path });
  Deno.writeTextFileSync(`${repo}/mounts/${"1".repeat(32)}.json`, root(unmounted)); // nothing mounted there
  Deno.writeTextFileSync(`${repo}/mounts/${"2".repeat(32)}.json`, "{not json");
  const names = () => [...Deno.readDirSync(`${repo}/mounts`)].map((e) => e.name[0]).sort();

  // rm: the stale root names no live mount, so nothing is said.
  const rm = await deltaship(repo, "rm", "app");
  assert.equal(rm.code, 0, rm.stderr);
  assert.doesNotMatch(rm.stderr, /mounted/);
  const dry = await deltaship(repo, "--json", "gc", "--dry-run");
  assert.equal(JSON.parse(dry.stdout).removed.images, 0, "rm removed the record already");
  assert.ok(JSON.parse(dry.stdout).removed.objects > 0);
  assert.deepEqual(names(), ["1", "2"], "--dry-run removes no root");

  // A root made in another mount namespace cannot be judged from here: it is kept, and so is what it needs.
  Deno.writeTextFileSync(`${repo}/mounts/${"3".repeat(32)}.json`, root(unmounted, "mnt:[1]"));
  const gc = await deltaship(repo, "--json", "gc");
  assert.equal(gc.code, 0, gc.stderr);
  assert.equal(JSON.parse(gc.stdout).removed.objects, 0, "the other namespace's mount keeps its objects");
  assert.deepEqual(names(), ["3"], "the stale and the damaged root are gone");
  const fsck = await deltaship(repo, "fsck");
  assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);

  Deno.removeSync(`${repo}/mounts/${"3".repeat(32)}.json`);
  const after = await deltaship(repo, "--json", "gc");
  assert.ok(JSON.parse(after.stdout).removed.objects > 0, "without the root, gc frees them");
});
