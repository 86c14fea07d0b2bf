/**
 * The rough edges a newcomer hit (issue 23): progress that keeps its own rows,
 * references and tag names refused with what to type instead, platforms,
 * read-only commands, delta source errors, mount points, create-delta's names,
 * JSON errors and temporary file names. Each test checks the message or the
 * behaviour the issue asks for.
 */
import assert from "node:assert/strict";
import { main } from "../src/cli/main.ts";
import { PlainProgress, progressKind, TerminalProgress } from "../src/cli/progress.ts";
import { formatBytes } from "../src/cli/format.ts";
import { concat } from "../src/util/streams.ts";
import { type CliResult, deltaship, tempDir } from "./helpers/cli.ts";
import { FakeTerminal } from "./helpers/fake_terminal.ts";
import { sampleTar, writeImage } from "./helpers/oci.ts";
import { buildTar } from "./helpers/tar.ts";

const dec = new TextDecoder();

/** Runs the CLI in-process with stderr going to `stderr` (a terminal when `terminal`), and `env`. */
async function runTo(
  args: string[],
  options: { stderr?: (b: Uint8Array) => void; terminal?: boolean; env?: Record<string, string> } = {},
): Promise<CliResult> {
  const out: Uint8Array[] = [];
  const err: Uint8Array[] = [];
  const code = await main(args, {
    stdout: { isTerminal: false, write: (b) => (out.push(b.slice()), Promise.resolve()) },
    stderr: {
      isTerminal: options.terminal ?? false,
      columns: 100,
      write: (b) => (err.push(b.slice()), options.stderr?.(b.slice()), Promise.resolve()),
    },
    env: { HOME: Deno.env.get("HOME"), ...options.env },
  });
  const stdoutBytes = concat(out);
  return { code, stdout: dec.decode(stdoutBytes), stdoutBytes, stderr: dec.decode(concat(err)) };
}

/** A tar of one file of `size` bytes (`fill` repeated: compresses well). */
function fileTar(name: string, size: number, fill = 0x61): Uint8Array {
  return buildTar([{ path: name, content: new Uint8Array(size).fill(fill) }]);
}

// deno-lint-ignore no-control-regex
const CONTROL = /\x1b|\r/;

// ---- 1. progress ----------------------------------------------------------------------------------------------------

Deno.test("progress: a note written during the live display stays above its rows; cursor-up never passes it", () => {
  const term = new FakeTerminal();
  const p = new TerminalProgress(term.write, 80);
  p.start("sha256:aaaa", "layer 1/2", 100);
  p.start("sha256:bbbb", "layer 2/2", 100);
  p.end(); // drawn: two rows
  const p2 = new TerminalProgress(term.write, 80);
  p2.start("sha256:cccc", "layer 1/1", 10);
  p2.advance("sha256:cccc", 10);
  p2.log("pulling oci:/x into the repository");
  const noteRow = term.find(/^pulling oci:\/x/);
  p2.finish("sha256:cccc");
  p2.start("sha256:dddd", "layer 1/1", 10);
  p2.log("second note");
  const secondRow = term.find(/^second note/);
  p2.finish("sha256:dddd", "rebuilt");
  p2.end("Created x");
  assert.deepEqual(term.unknown, []);
  // The ended display's rows are never moved over again.
  for (const target of term.upTargets) assert.ok(target >= 2, `moved up to row ${target}`);
  const screen = term.lines.map((l) => l.replace(/[\d.]+ [kMG]?B\/s$/, "RATE").replace(/\s+/g, " "));
  assert.deepEqual(screen, [
    "layer 1/2 sha256:aaaa 0 B / 100 B RATE",
    "layer 2/2 sha256:bbbb 0 B / 100 B RATE",
    "pulling oci:/x into the repository",
    "second note",
    "layer 1/1 sha256:cccc 10 B / 10 B done",
    "layer 1/1 sha256:dddd 0 B / 10 B rebuilt",
    "Created x",
  ]);
  assert.ok(noteRow === 2 && secondRow === 3);
});

Deno.test("progress: queued units keep their order whatever order they start in", () => {
  const term = new FakeTerminal();
  const p = new TerminalProgress(term.write, 80);
  p.queue("sha256:1111", "layer 1/2", 10);
  p.queue("sha256:2222", "layer 2/2", 20);
  p.start("sha256:2222", "layer 2/2", 20);
  p.end();
  assert.match(term.lines[0], /^layer 1\/2\s+sha256:1111.*waiting$/);
  assert.match(term.lines[1], /^layer 2\/2\s+sha256:2222/);
});

Deno.test("progress: plain prints one line per start and finish, no control sequences; auto picks it under CI", () => {
  const out: string[] = [];
  const p = new PlainProgress((b) => out.push(dec.decode(b)));
  p.start("sha256:aaaa", "layer 1/1", 2_000_000);
  p.advance("sha256:aaaa", 1_000_000);
  p.advance("sha256:aaaa", 1_000_000);
  p.log("a note");
  p.finish("sha256:aaaa", "done");
  p.end("Pulled x");
  const text = out.join("");
  assert.doesNotMatch(text, CONTROL);
  const lines = text.trimEnd().split("\n");
  assert.equal(lines.length, 4);
  assert.equal(lines[0], "layer 1/1 sha256:aaaa: started (2.00 MB)");
  assert.equal(lines[1], "a note");
  assert.match(lines[2], /^layer 1\/1 sha256:aaaa: done: 2\.00 MB \/ 2\.00 MB in \d+\.\d s$/);
  assert.equal(lines[3], "Pulled x");
  assert.equal(progressKind("auto", false, { CI: "true" }, false), "plain");
  assert.equal(progressKind("auto", false, {}, false), "none");
  assert.equal(progressKind("auto", false, { CI: "false" }, false), "none");
  assert.equal(progressKind("auto", true, { CI: "true" }, false), "live");
  assert.equal(progressKind("auto", false, { CI: "1" }, true), "none");
  assert.equal(progressKind("plain", true, {}, false), "plain");
});

Deno.test("progress: pull lists layer 1/2 above layer 2/2 on a terminal, and CI=1 gives plain lines", async () => {
  await using tmp = await tempDir();
  // Layer 2 is the larger: the fan-out starts it first.
  await writeImage(`${tmp.path}/l`, {
    tag: "t",
    layers: [{ tar: fileTar("small", 1000) }, { tar: fileTar("large", 300_000) }],
  });
  const term = new FakeTerminal();
  const live = await runTo(["--repo", `${tmp.path}/r1`, "-j", "1", "pull", `oci:${tmp.path}/l:t`], {
    terminal: true,
    stderr: term.write,
  });
  assert.equal(live.code, 0, live.stderr);
  const one = term.find(/^layer 1\/2/), two = term.find(/^layer 2\/2/);
  assert.ok(one >= 0 && two === one + 1, term.lines.join("\n"));
  assert.deepEqual(term.unknown, []);
  const ci = await runTo(["--repo", `${tmp.path}/r2`, "-j", "1", "pull", `oci:${tmp.path}/l:t`], {
    env: { CI: "true" },
  });
  assert.equal(ci.code, 0, ci.stderr);
  assert.doesNotMatch(ci.stderr, CONTROL);
  const lines = ci.stderr.trimEnd().split("\n");
  assert.equal(lines.filter((l) => / started/.test(l)).length, 2, ci.stderr);
  assert.equal(lines.filter((l) => /: done: /.test(l)).length, 2, ci.stderr);
  const bad = await runTo(["--repo", `${tmp.path}/r3`, "--progress", "fancy", "images"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--progress must be auto, always, plain or never/);
});

Deno.test("progress: create-delta's 'pulling' notes survive the live display; no row is drawn twice", async () => {
  await using tmp = await tempDir();
  await writeImage(`${tmp.path}/old`, { tag: "v1", layers: [{ tar: sampleTar("a") }] });
  await writeImage(`${tmp.path}/new`, { tag: "v2", layers: [{ tar: sampleTar("a") }, { tar: sampleTar("b") }] });
  const term = new FakeTerminal();
  const r = await runTo([
    "--repo",
    `${tmp.path}/r`,
    "create-delta",
    `oci:${tmp.path}/old:v1`,
    `oci:${tmp.path}/new:v2`,
    `${tmp.path}/d.tar`,
  ], { terminal: true, stderr: term.write });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(term.unknown, []);
  const lines = term.lines;
  const oldNote = term.find(/^pulling oci:.*old:v1 into the repository$/);
  const newNote = term.find(/^pulling oci:.*new:v2 into the repository$/);
  assert.ok(oldNote >= 0 && newNote > oldNote, lines.join("\n"));
  const rows = lines.filter((l) => /^layer \d\/\d\s+sha256:/.test(l) || /^\S.*sha256:[0-9a-f]{12}/.test(l));
  assert.equal(new Set(rows).size, rows.length, `a row drawn twice:\n${lines.join("\n")}`);
  // Never above the first note (the display's rows were all drawn after it); the notes themselves are intact above.
  for (const t of term.upTargets) assert.ok(t > oldNote, `moved up to row ${t}`);
  assert.equal(newNote, oldNote + 1, lines.join("\n"));
  assert.ok(lines.slice(newNote + 1).every((l) => /^layer \d\/\d\s+sha256:/.test(l)), lines.join("\n"));
});

Deno.test({
  name: "progress: push counts the bytes it sends (compressed), as its summary does",
  ignore: !(await hasRegistry()),
  async fn() {
    const { startRegistry } = await import("./helpers/registry.ts");
    await using tmp = await tempDir();
    await using registry = await startRegistry();
    const tar = fileTar("zeros", 2_000_000, 0);
    await writeImage(`${tmp.path}/l`, { tag: "t", layers: [{ tar }] });
    const repo = `${tmp.path}/r`;
    assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/l:t`)).code, 0);
    const r = await runTo([
      "--repo",
      repo,
      "--progress",
      "plain",
      "--json",
      "push",
      "t",
      `docker://${registry.host}/app:t`,
      "--tls-verify=false",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout);
    const layer = result.blobs.find((b: { digest: string }) => b.digest !== result.config);
    const line = r.stderr.split("\n").find((l) => /^layer 1\/1 .*: uploaded: /.test(l));
    assert.ok(line, r.stderr);
    const sent = /: uploaded: (.*) in /.exec(line)![1];
    assert.equal(sent, formatBytes(layer.size), r.stderr);
    assert.notEqual(sent, formatBytes(tar.length));
    assert.ok(result.bytesUploaded < tar.length / 10);
  },
});

async function hasRegistry(): Promise<boolean> {
  try {
    await new Deno.Command("docker-registry", { args: ["--version"], stdout: "null", stderr: "null" }).output();
    return true;
  } catch {
    if (Deno.env.get("REQUIRE_INTEROP") === "1") throw new Error("docker-registry is required");
    console.log("skipped: docker-registry not installed");
    return false;
  }
}

// ---- 2. references and tag names ------------------------------------------------------------------------------------

Deno.test("references: push without docker://, a digest without '@', bad tag names, too short a digest prefix", async () => {
  await using tmp = await tempDir();
  await writeImage(`${tmp.path}/l`, { tag: "t", layers: [{ tar: sampleTar() }] });
  const repo = `${tmp.path}/r`;
  assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/l:t`, "v2")).code, 0);
  const push = await deltaship(repo, "push", "v2", "127.0.0.1:5055/app:v2");
  assert.equal(push.code, 2);
  assert.equal(
    push.stderr,
    'deltaship: push: the destination must be docker://REGISTRY/REPO[:TAG], got "127.0.0.1:5055/app:v2" ' +
      "(did you mean docker://127.0.0.1:5055/app:v2?)\n",
  );
  const layout = await deltaship(repo, "push", "v2", `oci:${tmp.path}/out`);
  assert.match(layout.stderr, /to write a layout use export/);
  const inspect = await deltaship(repo, "inspect", "sha256:8df5");
  assert.equal(inspect.code, 1);
  assert.match(
    inspect.stderr,
    /no image tagged "sha256:8df5" in the repository; to name an image by manifest digest, write @sha256:8df5/,
  );
  for (const bad of ["sha256:abcd", "../../evil", "Bad/Name", ".hidden", "a b", "a".repeat(129), "a:b"]) {
    const r = await deltaship(repo, "tag", "v2", bad);
    assert.equal(r.code, 2, bad);
    assert.match(r.stderr, /^deltaship: invalid tag name .*: a tag is letters, digits, '_', '\.' and '-'/, bad);
    if (bad === "sha256:abcd") assert.match(r.stderr, /images are named by digest as @sha256:abcd/);
  }
  for (const good of ["Release_1.2-rc", "_x", "9"]) assert.equal((await deltaship(repo, "tag", "v2", good)).code, 0);
  const names = await deltaship(repo, "pull", `oci:${tmp.path}/l:t`, "../../evil");
  assert.equal(names.code, 2);
  assert.match(names.stderr, /invalid tag name "\.\.\/\.\.\/evil"/);
  const short = await deltaship(repo, "inspect", "@sha256:7d6");
  assert.equal(short.code, 2);
  assert.match(short.stderr, /"@sha256:7d6": give at least 4 hex digits of the manifest digest/);
  const tags = await deltaship(repo, "--json", "images");
  assert.doesNotMatch(tags.stdout, /evil|Bad\/Name/);
});

// ---- 3. platforms ---------------------------------------------------------------------------------------------------

Deno.test({
  name: "platform: --platform another than an index offers, or than a single image's config names, fails naming it",
  ignore: !(await hasRegistry()) || !(await hasTool("skopeo")),
  async fn() {
    const { pushImage, startRegistry } = await import("./helpers/registry.ts");
    const { writeIndex } = await import("./helpers/oci.ts");
    await using tmp = await tempDir();
    await using registry = await startRegistry();
    const amd64 = { os: "linux", architecture: "amd64" };
    const image = await writeImage(`${tmp.path}/l`, { tag: "single", layers: [{ tar: sampleTar() }], platform: amd64 });
    await writeIndex(`${tmp.path}/l`, "multi", [{ image, platform: amd64 }]);
    await pushImage(`oci:${tmp.path}/l:single`, `docker://${registry.host}/app:single`);
    await pushImage(`oci:${tmp.path}/l:multi`, `docker://${registry.host}/app:multi`, { all: true });
    const repo = `${tmp.path}/r`;
    const pull = (ref: string, ...more: string[]) =>
      deltaship(repo, "pull", `docker://${registry.host}/app:${ref}`, "--tls-verify=false", ...more);
    const multi = await pull("multi", "--platform", "linux/arm64");
    assert.equal(multi.code, 1);
    assert.match(
      multi.stderr,
      /has no image for platform linux\/arm64; available: linux\/amd64 \(choose one with --platform\)/,
    );
    const single = await pull("single", "--platform", "linux/arm64");
    assert.equal(single.code, 1);
    assert.match(
      single.stderr,
      /app:single \(sha256:[0-9a-f]{64}\) is a single image for platform linux\/amd64, not linux\/arm64 .*--platform linux\/amd64\)\n$/,
    );
    const layout = await deltaship(repo, "pull", `oci:${tmp.path}/l:single`, "--platform", "linux/arm64/v8");
    assert.equal(layout.code, 1);
    assert.match(layout.stderr, /is a single image for platform linux\/amd64, not linux\/arm64\/v8/);
    assert.deepEqual(JSON.parse((await deltaship(repo, "--json", "images")).stdout), []);
    assert.equal((await pull("single", "--platform", "linux/amd64")).code, 0);
    assert.equal((await pull("multi", "--platform", "linux/amd64")).code, 0);
  },
});

Deno.test("platform: create-delta --platform checks OLD and NEW too; without it a single image of any platform is used", async () => {
  await using tmp = await tempDir();
  const arm = { os: "linux", architecture: "arm64", variant: "v8" };
  await writeImage(`${tmp.path}/old`, { tag: "v1", layers: [{ tar: sampleTar("a") }], platform: arm });
  await writeImage(`${tmp.path}/new`, { tag: "v2", layers: [{ tar: sampleTar("b") }], platform: arm });
  const args = ["create-delta", `oci:${tmp.path}/old:v1`, `oci:${tmp.path}/new:v2`];
  const wrong = await deltaship(`${tmp.path}/r`, ...args, `${tmp.path}/a.tar`, "--platform", "linux/amd64");
  assert.equal(wrong.code, 1);
  assert.match(
    wrong.stderr,
    /old:v1 \(sha256:[0-9a-f]{64}\) is a single image for platform linux\/arm64\/v8, not linux\/amd64/,
  );
  const right = await deltaship(`${tmp.path}/r`, ...args, `${tmp.path}/b.tar`, "--platform", "linux/arm64");
  assert.equal(right.code, 0, right.stderr);
  const any = await deltaship(`${tmp.path}/r2`, ...args, `${tmp.path}/c.tar`);
  assert.equal(any.code, 0, any.stderr);
});

async function hasTool(name: string): Promise<boolean> {
  try {
    await new Deno.Command(name, { args: ["--version"], stdout: "null", stderr: "null" }).output();
    return true;
  } catch {
    if (Deno.env.get("REQUIRE_INTEROP") === "1") throw new Error(`${name} is required`);
    console.log(`skipped: ${name} not installed`);
    return false;
  }
}

// ---- 4. read-only commands ------------------------------------------------------------------------------------------

Deno.test("read-only commands never create a repository: 'no repository at DIR', exit 1", async () => {
  await using tmp = await tempDir();
  const missing = `${tmp.path}/typo`;
  const commands = [
    ["images"],
    ["inspect", "x"],
    ["fsck"],
    ["gc", "--dry-run"],
    ["gc"],
    ["tag", "x", "y"],
    ["untag", "x"],
    ["rm", "x"],
    ["export", "x", `oci:${tmp.path}/out`],
    ["checkout", "x", `${tmp.path}/co`],
    ["upgrade"],
    ["push", "x", "docker://127.0.0.1:1/app:x"],
  ];
  for (const args of commands) {
    const r = await deltaship(missing, ...args);
    assert.equal(r.code, 1, `${args.join(" ")}: ${r.stderr}`);
    assert.equal(
      r.stderr,
      `deltaship: no repository at ${missing} (check --repo and $DELTASHIP_REPO; pull creates one)\n`,
    );
    assert.equal(r.stdout, "");
  }
  assert.deepEqual([...Deno.readDirSync(tmp.path)], []);
  // pull makes one.
  await writeImage(`${tmp.path}/l`, { tag: "t", layers: [{ tar: sampleTar() }] });
  assert.equal((await deltaship(missing, "pull", `oci:${tmp.path}/l:t`)).code, 0);
  assert.equal((await deltaship(missing, "images")).code, 0);
});

// ---- 5. a delta's missing source ------------------------------------------------------------------------------------

Deno.test({
  name: "delta source: the error names the source manifest the delta records and the tag to pull",
  ignore: !(await hasRegistry()),
  async fn() {
    const { startRegistry } = await import("./helpers/registry.ts");
    await using tmp = await tempDir();
    await using registry = await startRegistry();
    const old = await writeImage(`${tmp.path}/old`, { tag: "v1", layers: [{ tar: sampleTar("a") }] });
    await writeImage(`${tmp.path}/new`, { tag: "v2", layers: [{ tar: sampleTar("b") }] });
    const maker = `${tmp.path}/maker`;
    const made = await deltaship(
      maker,
      "create-delta",
      `oci:${tmp.path}/old:v1`,
      `oci:${tmp.path}/new:v2`,
      `docker://${registry.host}/app`,
      "--tls-verify=false",
    );
    assert.equal(made.code, 0, made.stderr);
    const layout = await deltaship(
      maker,
      "create-delta",
      `oci:${tmp.path}/old:v1`,
      `oci:${tmp.path}/new:v2`,
      `oci:${tmp.path}/delta:v1-to-v2`,
    );
    assert.equal(layout.code, 0, layout.stderr);
    const client = `${tmp.path}/client`;
    const fromRegistry = await deltaship(
      client,
      "pull",
      `docker://${registry.host}/app:v1-to-v2`,
      "--tls-verify=false",
    );
    assert.equal(fromRegistry.code, 1);
    const recorded = `manifest ${old.manifest}, config ${old.config}`;
    assert.equal(
      fromRegistry.stderr,
      `deltaship: delta docker://${registry.host}/app:v1-to-v2 (${
        fromRegistry.stderr.match(/sha256:[0-9a-f]{64}/)![0]
      }) ` +
        `needs its source image (${recorded}), which is not in the repository; pull it first: ` +
        `deltaship pull docker://${registry.host}/app:v1\n`,
    );
    const fromLayout = await deltaship(client, "pull", `oci:${tmp.path}/delta:v1-to-v2`);
    assert.equal(fromLayout.code, 1);
    assert.match(
      fromLayout.stderr,
      new RegExp(
        `needs its source image \\(${recorded}\\), .*; pull it first \\(tagged "v1", by the delta's name\\)\\n$`,
      ),
    );
    const apply = await deltaship(client, "apply-delta", `oci:${tmp.path}/delta:v1-to-v2`, `oci:${tmp.path}/out`);
    assert.equal(apply.code, 1);
    assert.match(apply.stderr, new RegExp(`needs its source image \\(${recorded}\\)`));
  },
});

// ---- 6. mount points ------------------------------------------------------------------------------------------------

Deno.test({
  name: "mount on a mount point says it is one (not 'is not empty'); umount of a plain directory exits 1",
  ignore: !(await mountsWork()),
  async fn() {
    await using tmp = await tempDir();
    const repo = `${tmp.path}/r`;
    await writeImage(`${tmp.path}/l`, { tag: "t", layers: [{ tar: sampleTar() }] });
    assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/l:t`)).code, 0);
    const target = `${tmp.path}/mnt`;
    await Deno.mkdir(target);
    const plain = await deltaship(repo, "umount", target);
    assert.equal(plain.code, 1);
    assert.equal(plain.stderr, `deltaship: ${target} is not a mount point\n`);
    const m = await deltaship(repo, "mount", "t", target);
    assert.equal(m.code, 0, m.stderr);
    try {
      const again = await deltaship(repo, "mount", "t", target);
      assert.equal(again.code, 1);
      assert.equal(
        again.stderr,
        `deltaship: ${target} is already a mount point (an image deltaship mount mounted; deltaship umount ` +
          "unmounts it); mount on an empty directory that is not one\n",
      );
    } finally {
      assert.equal((await deltaship(repo, "umount", target)).code, 0);
    }
    const tmpfs = `${tmp.path}/tmpfs`;
    await Deno.mkdir(tmpfs);
    await new Deno.Command("mount", { args: ["-t", "tmpfs", "-o", "size=1m", "tmpfs", tmpfs] }).output();
    try {
      const foreign = await deltaship(repo, "mount", "t", tmpfs);
      assert.equal(foreign.code, 1);
      assert.match(foreign.stderr, /is already a mount point \(a tmpfs mount\)/);
    } finally {
      await new Deno.Command("umount", { args: [tmpfs] }).output();
    }
  },
});

async function mountsWork(): Promise<boolean> {
  const { canMount, whyNoMounts } = await import("./helpers/interop.ts");
  if (canMount("rough edges: mount points")) return true;
  console.log(`skipped: mount points (${whyNoMounts()})`);
  return false;
}

// ---- 7. create-delta's names ----------------------------------------------------------------------------------------

Deno.test("create-delta takes bare repository names (and @digests) for OLD and NEW, as other commands do", async () => {
  await using tmp = await tempDir();
  const repo = `${tmp.path}/r`;
  await writeImage(`${tmp.path}/old`, { tag: "v1", layers: [{ tar: sampleTar("a") }] });
  await writeImage(`${tmp.path}/new`, { tag: "v2", layers: [{ tar: sampleTar("a") }, { tar: sampleTar("b") }] });
  assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/old:v1`)).code, 0);
  const pulled = await deltaship(repo, "--json", "pull", `oci:${tmp.path}/new:v2`);
  const v2 = JSON.parse(pulled.stdout).manifest as string;
  const bare = await deltaship(repo, "--json", "create-delta", "v1", "v2", `${tmp.path}/out.tar`);
  assert.equal(bare.code, 0, bare.stderr);
  const prefixed = await deltaship(
    repo,
    "--json",
    "create-delta",
    "repo:v1",
    `@${v2.slice(0, 15)}`,
    `${tmp.path}/o2.tar`,
  );
  assert.equal(prefixed.code, 0, prefixed.stderr);
  assert.equal(JSON.parse(bare.stdout).manifest, JSON.parse(prefixed.stdout).manifest);
  assert.equal(JSON.parse(bare.stdout).target, v2);
  const missing = await deltaship(repo, "create-delta", "v0", "v2", `${tmp.path}/o3.tar`);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no image tagged "v0" in the repository/);
  const slip = await deltaship(repo, "create-delta", "v1", "127.0.0.1:5055/app:v2", `${tmp.path}/o4.tar`);
  assert.equal(slip.code, 2);
  assert.match(
    slip.stderr,
    /invalid NEW "127\.0\.0\.1:5055\/app:v2": .* \(did you mean docker:\/\/127\.0\.0\.1:5055\/app:v2\?\)/,
  );
});

// ---- 8. JSON ---------------------------------------------------------------------------------------------------------

Deno.test("json: images says tags as inspect does; a failure prints {error: {message, kind}} on stdout too", async () => {
  await using tmp = await tempDir();
  const repo = `${tmp.path}/r`;
  await writeImage(`${tmp.path}/l`, { tag: "t", layers: [{ tar: sampleTar() }] });
  assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/l:t`, "v1")).code, 0);
  assert.equal((await deltaship(repo, "tag", "v1", "v2")).code, 0);
  const images = JSON.parse((await deltaship(repo, "--json", "images")).stdout);
  const inspect = JSON.parse((await deltaship(repo, "--json", "inspect", "v1")).stdout);
  assert.deepEqual(images[0].tags, ["v1", "v2"]);
  assert.deepEqual(inspect.tags, images[0].tags);
  assert.equal(images[0].names, undefined);
  const cases: [string[], number, string, RegExp][] = [
    [["inspect", "nosuch"], 1, "not-found", /^no image tagged "nosuch" in the repository/],
    [["tag", "v1", "Bad/Name"], 2, "invalid-argument", /^invalid tag name "Bad\/Name"/],
    [["images", "extra"], 2, "usage", /^images: expected no arguments, got 1 argument/],
    [["images", "--bogus"], 2, "usage", /^unknown option --bogus/],
    [["pull", `oci:${tmp.path}/missing`], 1, "not-found", /missing/],
  ];
  for (const [args, code, kind, message] of cases) {
    const r = await deltaship(repo, "--json", ...args);
    assert.equal(r.code, code, `${args.join(" ")}: ${r.stderr}`);
    const out = JSON.parse(r.stdout);
    assert.deepEqual(Object.keys(out), ["error"]);
    assert.equal(out.error.kind, kind, args.join(" "));
    assert.match(out.error.message, message);
    assert.equal(r.stderr, `deltaship: ${out.error.message}\n`, "the same one line on stderr");
  }
  // After the command name, and without --json: stdout stays empty.
  const after = await deltaship(repo, "inspect", "nosuch", "--json");
  assert.equal(JSON.parse(after.stdout).error.kind, "not-found");
  const plain = await deltaship(repo, "inspect", "nosuch");
  assert.equal(plain.stdout, "");
  assert.equal(plain.code, 1);
});

// ---- 9. temporary names ---------------------------------------------------------------------------------------------

Deno.test("temporary names: errors name the path the user gave, never a temporary one", async () => {
  const { userPaths, siblingTemp } = await import("../src/util/owned_temp.ts");
  const id = "60466b0d";
  const cases: [string, string][] = [
    [`not a directory: open '/dir/.x.cfs.deltaship-4242-${id}'`, "not a directory: open '/dir/x.cfs'"],
    [
      `no space left on device: open '/d/.out.tar.deltaship-7-${id}.lock-new'`,
      "no space left on device: open '/d/out.tar'",
    ],
    [`write '/d/.out.deltaship-7-${id}/blobs/sha256/.tmp-${id}'`, "write '/d/out/blobs/sha256'"],
    [`mkdir '/layout/.deltaship-staging-99-${id}/blobs'`, "mkdir '/layout/blobs'"],
    [`mkdir '/home/u/repo.init-123-${id}/tmp'`, "mkdir '/home/u/repo/tmp'"],
    ["open '/a/.hidden.deltaship-notes'", "open '/a/.hidden.deltaship-notes'"], // not one of ours: unchanged
  ];
  for (const [text, want] of cases) assert.equal(userPaths(text), want);
  const temp = siblingTemp("/dir/x.cfs");
  assert.match(temp, /^\/dir\/\.x\.cfs\.deltaship-\d+-[0-9a-f]{8}$/);
  assert.equal(userPaths(`open '${temp}'`), "open '/dir/x.cfs'");

  await using tmp = await tempDir();
  const repo = `${tmp.path}/r`;
  await writeImage(`${tmp.path}/l`, { tag: "t", layers: [{ tar: sampleTar() }] });
  assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/l:t`)).code, 0);
  await Deno.writeTextFile(`${tmp.path}/file`, "x");
  for (const out of [`${tmp.path}/file/x.cfs`, `${tmp.path}/missing/x.cfs`]) {
    const r = await deltaship(repo, "create-image", "t", out);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`^deltaship: (not a directory|no such file or directory): open '${out}'\\n$`));
    assert.doesNotMatch(r.stderr, /deltaship-\d+|[0-9a-f]{8}-[0-9a-f]{4}-/);
  }
});
