/**
 * Commits are durable, in order: traced with strace, a pull makes file data and
 * renames reach the disk in the order docs/repository.md promises (objects before
 * the layer record naming them, records and documents before the image record,
 * the image record before its tag, and a last barrier before exiting), with
 * syncfs barriers, or with per-file fdatasync and directory fsync under
 * DELTASHIP_SYNC=fsync.
 */
import assert from "node:assert/strict";
import { deltashipCommand, tempDir } from "./helpers/cli.ts";
import { haveTools } from "./helpers/interop.ts";
import { sampleTar, writeImage } from "./helpers/oci.ts";
import { buildTar } from "./helpers/tar.ts";
import { noise } from "./helpers/data.ts";

/** One traced system call, in the order the calls took effect. */
type Event =
  | { call: "rename"; from: string; to: string }
  | { call: "syncfs" }
  | { call: "fdatasync" | "fsync"; path: string };

/**
 * Parses `strace -f -y` output into events: renames when they start (the new
 * name may be visible from then on), syncs when they finish (only then is the
 * barrier passed).
 */
function parseTrace(text: string): Event[] {
  const events: Event[] = [];
  const pending = new Map<string, string>(); // pid -> unfinished sync line
  for (const raw of text.split("\n")) {
    const line = raw.replace(/^(\[pid\s+)?(\d+)\]?\s+/, "$2 ");
    const pid = line.split(" ")[0];
    const rest = line.slice(pid.length + 1);
    const rename = /^rename(?:at2?)?\((?:[^,]*, )?"([^"]+)", (?:[^,]*, )?"([^"]+)"/.exec(rest);
    if (rename) {
      events.push({ call: "rename", from: rename[1], to: rename[2] });
      continue;
    }
    const sync = /^(syncfs|fdatasync|fsync)\((\d+)<([^>]*)>/.exec(rest);
    if (sync) {
      if (rest.includes("<unfinished ...>")) pending.set(pid, rest);
      else if (/= 0$/.test(rest)) events.push(syncEvent(sync[1], sync[3]));
      continue;
    }
    const resumed = /^<\.\.\. (syncfs|fdatasync|fsync) resumed>.*= 0$/.exec(rest);
    if (resumed) {
      const start = /^(syncfs|fdatasync|fsync)\((\d+)<([^>]*)>/.exec(pending.get(pid) ?? "");
      pending.delete(pid);
      if (start) events.push(syncEvent(start[1], start[3]));
    }
  }
  return events;
}

function syncEvent(call: string, path: string): Event {
  return call === "syncfs" ? { call: "syncfs" } : { call: call as "fsync" | "fdatasync", path };
}

/** What a rename published, by its destination in the repository. */
function kind(repo: string, to: string): string | undefined {
  const rel = to.startsWith(`${repo}/`) ? to.slice(repo.length + 1) : undefined;
  if (rel === undefined || rel.startsWith("tmp/")) return undefined;
  return { objects: "O", layers: "L", blobs: "B", images: "I", tags: "T" }[rel.split("/")[0]];
}

async function tracedPull(repo: string, layout: string, env: Record<string, string>): Promise<Event[]> {
  await using tmp = await tempDir();
  const trace = `${tmp.path}/trace`;
  const main = new URL("../main.ts", import.meta.url).pathname;
  const out = await new Deno.Command("strace", {
    args: [
      "-f",
      "-y",
      "-qq",
      "-o",
      trace,
      "-e",
      "trace=rename,renameat,renameat2,fsync,fdatasync,syncfs",
      Deno.execPath(),
      "run",
      "--allow-all",
      "--quiet",
      main,
      "--repo",
      repo,
      "-j",
      "1",
      "pull",
      `oci:${layout}:big`,
      "big",
    ],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return parseTrace(await Deno.readTextFile(trace));
}

async function bigLayout(dir: string): Promise<void> {
  const files = Array.from({ length: 40 }, (_, i) => ({ path: `f/${i}.txt`, content: `file ${i}\n`.repeat(i + 1) }));
  await writeImage(dir, {
    tag: "big",
    layers: [
      { tar: sampleTar("one") },
      { tar: buildTar([...files, { path: "big.bin", content: noise(3 << 20, 5) }]) },
    ],
  });
}

Deno.test("durability: with syncfs, a pull publishes objects, records, documents, image and tag between barriers", async () => {
  if (!haveTools("durability (syncfs)", "strace")) return;
  await using tmp = await tempDir();
  await bigLayout(`${tmp.path}/l`);
  const repo = `${tmp.path}/repo`;
  await Deno.mkdir(repo);
  // The repository is created by the first pull (read-only commands make none); trace a pull into an existing one.
  const init = await deltashipCommand(["--repo", repo, "pull", `oci:${tmp.path}/none`]).output();
  assert.equal(init.code, 1);
  assert.ok(Deno.statSync(`${repo}/deltaship-repo.json`).isFile);
  const events = await tracedPull(repo, `${tmp.path}/l`, {});
  const seq = events.map((e) => e.call === "rename" ? kind(repo, e.to) : "S").filter((k) => k !== undefined).join("");
  // Per layer: data barrier, new objects, barrier, record. Then the composefs image:
  // data barrier, its object, barrier. Then documents, barrier, image record,
  // barrier, tag, barrier.
  assert.match(seq, /^(S(O+S)?L){2}SOSB{2}SISTS$/, seq);
  assert.ok(!events.some((e) => e.call === "fdatasync"), "syncfs mode syncs no file one by one");
});

Deno.test("durability: DELTASHIP_SYNC=fsync syncs each file before its rename and each directory after", async () => {
  if (!haveTools("durability (fsync)", "strace")) return;
  await using tmp = await tempDir();
  await bigLayout(`${tmp.path}/l`);
  const repo = `${tmp.path}/repo`;
  const init = await deltashipCommand(["--repo", repo, "pull", `oci:${tmp.path}/none`], {
    env: { DELTASHIP_SYNC: "fsync" },
  }).output();
  assert.equal(init.code, 1); // a pull of nothing: the repository is made, nothing stored
  assert.ok(Deno.statSync(`${repo}/deltaship-repo.json`).isFile);
  const events = await tracedPull(repo, `${tmp.path}/l`, { DELTASHIP_SYNC: "fsync" });
  assert.ok(!events.some((e) => e.call === "syncfs"));
  const rank: Record<string, number> = { O: 1, L: 2, B: 2, I: 3, T: 4 };
  const published = events.flatMap((e, i) => e.call === "rename" && kind(repo, e.to) ? [{ e, i }] : []);
  assert.ok(published.length >= 40, `${published.length} renames into the repository`);
  // Paths whose data was synced (a synced file stays synced through renames in tmp/).
  const synced = new Set<string>();
  let lastRank = 0;
  events.forEach((e, i) => {
    if (e.call === "fdatasync") synced.add(e.path);
    if (e.call !== "rename") return;
    const k = kind(repo, e.to);
    assert.ok(synced.has(e.from), `${e.to}: its data (${e.from}) was not synced before the rename`);
    synced.add(e.to);
    if (!k) return;
    // Its directory is synced after it, before anything of a later stage is published.
    const dir = e.to.slice(0, e.to.lastIndexOf("/"));
    const at = events.findIndex((x, j) => j > i && x.call === "fsync" && x.path === dir);
    assert.ok(at > i, `${dir} not synced after ${e.to}`);
    const later = published.find((p) => p.i > i && rank[kind(repo, (p.e as { to: string }).to)!] > rank[k]);
    if (later) assert.ok(at < later.i, `${e.to}: a later stage was published before its directory was synced`);
    lastRank = Math.max(lastRank, rank[k]);
  });
  assert.equal(lastRank, 4, "the tag was published");
});
