/**
 * The temporary-directory protocol: what dead processes left in tmp/ is swept by
 * the next process to open the repository; what a live process holds (its locked
 * lock file and its directory) never is.
 */
import assert from "node:assert/strict";
import { Repository } from "../src/repo/repository.ts";
import { tempDir } from "./helpers/cli.ts";

Deno.test("temp: the sweep removes dead processes' directories and lock files, never a live one's", async () => {
  await using tmp = await tempDir();
  const root = `${tmp.path}/repo`;
  const live = await Repository.open(root);
  const liveDir = live.tempDir; // created and locked
  await Deno.writeTextFile(`${liveDir}/work`, "in use");
  const t = `${root}/tmp`;
  // A killed process: lock file (no longer locked) and directory.
  await Deno.mkdir(`${t}/999-dead/staging`, { recursive: true });
  await Deno.writeFile(`${t}/999-dead/staging/obj`, new Uint8Array(5000));
  await Deno.writeTextFile(`${t}/999-dead.lock`, "");
  // A directory whose lock file is gone, and a lock file left by an older version's protocol.
  await Deno.mkdir(`${t}/888-orphan`);
  await Deno.writeTextFile(`${t}/.777-old.lock-new`, "");

  const other = await Repository.open(root, { create: false });
  const left = [...Deno.readDirSync(t)].map((e) => e.name).sort();
  const own = liveDir.slice(liveDir.lastIndexOf("/") + 1);
  assert.deepEqual(left, [own, `${own}.lock`].sort());
  assert.equal(await Deno.readTextFile(`${liveDir}/work`), "in use");

  // gc's count of the same (dry run counts, removes nothing).
  await Deno.mkdir(`${t}/666-dead`);
  await Deno.writeFile(`${t}/666-dead/x`, new Uint8Array(1234));
  await Deno.writeTextFile(`${t}/666-dead.lock`, "");
  assert.deepEqual(await other.temp.sweep(true), { dirs: 1, bytes: 1234 });
  assert.ok(Deno.statSync(`${t}/666-dead`).isDirectory);
  assert.deepEqual(await other.temp.sweep(), { dirs: 1, bytes: 1234 });
  assert.throws(() => Deno.statSync(`${t}/666-dead.lock`), Deno.errors.NotFound);

  // The second repository's own temporary directory is made under the new protocol too.
  const second = other.tempDir;
  assert.ok(Deno.statSync(second).isDirectory && Deno.statSync(`${second}.lock`).isFile);
  await other.close();
  await live.close();
  assert.deepEqual([...Deno.readDirSync(t)], []);
});
