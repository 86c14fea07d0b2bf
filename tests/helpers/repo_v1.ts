/**
 * Test helper: version-1 repositories (objects named by SHA-256 at
 * `objects/sha256/xx/<64 hex>`, records `DSLAYER1`), to upgrade. A version-2
 * repository made by today's pull is turned into the version-1 repository the
 * deltaship before fs-verity names would have made from the same pulls:
 * `tests/upgrade_test.ts` checks that against `testdata/repo-v1.tar.gz`, which
 * that deltaship made.
 */
import { createHash } from "node:crypto";
import { LayerRecordWriter, readRecord } from "../../src/repo/layer_record.ts";
import { objectPath } from "../../src/repo/objects.ts";

/** The committed version-1 repository (see testdata/repo-v1.README.md), unpacked into `dir`; returns its path. */
export async function unpackFixtureV1(dir: string): Promise<string> {
  const tar = new URL("../../testdata/repo-v1.tar.gz", import.meta.url).pathname;
  const out = await new Deno.Command("tar", { args: ["-xzf", tar, "-C", dir], stderr: "piped" }).output();
  if (!out.success) throw new Error(`tar -xzf ${tar}: ${new TextDecoder().decode(out.stderr)}`);
  return `${dir}/repo-v1`;
}

/** Rewrites the version-2 repository at `repo` in place as version 1 (no process may be using it). */
export async function downgradeToV1(repo: string): Promise<void> {
  const objects = `${repo}/objects`;
  for (let i = 0; i < 256; i++) {
    await Deno.mkdir(`${objects}/sha256/${i.toString(16).padStart(2, "0")}`, { recursive: true });
  }
  const renamed = new Map<string, Uint8Array>();
  for (const alg of Deno.readDirSync(`${repo}/layers`)) {
    for (const e of Deno.readDirSync(`${repo}/layers/${alg.name}`)) {
      const path = `${repo}/layers/${alg.name}/${e.name}`;
      const tmp = `${path}.v1`;
      const writer = await LayerRecordWriter.create(tmp, undefined, 1);
      const items = readRecord(path);
      for (;;) {
        const next = await items.next();
        if (next.done) {
          await writer.finish(next.value);
          break;
        }
        const item = next.value;
        if (item.type !== "object") {
          await writer.copy(item);
          continue;
        }
        let sha = renamed.get(item.hex);
        if (!sha) {
          const bytes = await Deno.readFile(objectPath(objects, item.hex));
          sha = new Uint8Array(createHash("sha256").update(bytes).digest());
          const hex = [...sha].map((b) => b.toString(16).padStart(2, "0")).join("");
          await Deno.writeFile(`${objects}/sha256/${hex.slice(0, 2)}/${hex}`, bytes);
          renamed.set(item.hex, sha);
        }
        await writer.copy(item, sha);
      }
      await Deno.rename(tmp, path);
    }
  }
  for (const e of [...Deno.readDirSync(objects)]) {
    if (e.name !== "sha256") await Deno.remove(`${objects}/${e.name}`, { recursive: true });
  }
  // Version 1 had no composefs images (their objects went with the others above).
  for (const alg of Deno.readDirSync(`${repo}/images`)) {
    for (const e of Deno.readDirSync(`${repo}/images/${alg.name}`)) {
      const path = `${repo}/images/${alg.name}/${e.name}`;
      const { composefs: _, ...record } = JSON.parse(await Deno.readTextFile(path));
      await Deno.writeTextFile(path, JSON.stringify(record, null, 1) + "\n");
    }
  }
  await Deno.writeTextFile(
    `${repo}/deltaship-repo.json`,
    JSON.stringify({ format: "deltaship-repo", version: 1 }) + "\n",
  );
}
