import assert from "node:assert/strict";
import { COMMANDS } from "../src/cli/main.ts";
import { deltaship, runCli, tempDir } from "./helpers/cli.ts";
import { sampleTar, writeImage } from "./helpers/oci.ts";
import config from "../deno.json" with { type: "json" };

Deno.test("--version prints the version from deno.json", async () => {
  const r = await runCli(["--version"]);
  assert.equal(r.code, 0);
  assert.equal(r.stdout, `deltaship ${config.version}\n`);
});

Deno.test("--help works on every command", async () => {
  const top = await runCli(["--help"]);
  assert.equal(top.code, 0);
  for (const cmd of COMMANDS) {
    assert.match(top.stdout, new RegExp(`^  ${cmd.name}\\s`, "m"));
    const r = await runCli([cmd.name, "--help"]);
    assert.equal(r.code, 0, cmd.name);
    assert.match(r.stdout, new RegExp(`^Usage: deltaship \\[global options\\] ${cmd.name}`), cmd.name);
    assert.match(r.stdout, /Global options:/);
    assert.deepEqual(await runCli(["help", cmd.name]), r);
  }
});

Deno.test("usage errors exit 2 with one line", async () => {
  const cases: [string[], RegExp][] = [
    [[], /Usage: deltaship/],
    [["frobnicate"], /unknown command "frobnicate"/],
    [["images", "--bogus"], /unknown option --bogus/],
    [["pull"], /pull: expected SOURCE \[NAME\], got 0 arguments/],
    [["--jobs", "0", "images"], /--jobs must be an integer from 1 to 1024, got "0"/],
    [["--progress", "sometimes", "images"], /--progress must be auto, always, plain or never/],
    [["pull", "http://example.com/x"], /invalid source "http:\/\/example.com\/x"/],
    [["pull", "--platform", "linux", "oci:x"], /invalid platform "linux"/],
    [["tag", "x", "@bad"], /invalid tag name "@bad"/],
  ];
  await using tmp = await tempDir();
  for (const [args, re] of cases) {
    const r = await runCli(["--repo", tmp.path + "/repo", ...args]);
    assert.equal(r.code, 2, args.join(" "));
    assert.match(r.stdout + r.stderr, re, args.join(" "));
  }
});

Deno.test("the repository defaults to DELTASHIP_REPO, then XDG_DATA_HOME, then HOME", async () => {
  await using tmp = await tempDir();
  await writeImage(`${tmp.path}/l`, { tag: "t", layers: [{ tar: sampleTar() }] });
  const src = `oci:${tmp.path}/l:t`;
  assert.equal((await runCli(["pull", src], { DELTASHIP_REPO: `${tmp.path}/a` })).code, 0);
  assert.ok(Deno.statSync(`${tmp.path}/a/deltaship-repo.json`).isFile);
  assert.equal((await runCli(["pull", src], { XDG_DATA_HOME: `${tmp.path}/xdg` })).code, 0);
  assert.ok(Deno.statSync(`${tmp.path}/xdg/deltaship/deltaship-repo.json`).isFile);
  assert.equal((await runCli(["pull", src], { HOME: `${tmp.path}/home` })).code, 0);
  assert.ok(Deno.statSync(`${tmp.path}/home/.local/share/deltaship/deltaship-repo.json`).isFile);
});

Deno.test("a non-empty directory that is not a repository is refused", async () => {
  await using tmp = await tempDir();
  await Deno.writeTextFile(`${tmp.path}/precious.txt`, "keep me");
  const r = await deltaship(tmp.path, "pull", `oci:${tmp.path}/missing`);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /exists, is not empty, and is not a deltaship repository/);
  const read = await deltaship(tmp.path, "images");
  assert.equal(read.code, 1);
  assert.match(read.stderr, /^deltaship: no repository at /);
  assert.deepEqual([...Deno.readDirSync(tmp.path)].map((e) => e.name), ["precious.txt"]);
});

Deno.test("errors carry a stack trace only with DELTASHIP_DEBUG=1", async () => {
  await using tmp = await tempDir();
  const plain = await runCli(["--repo", `${tmp.path}/r`, "inspect", "nothing"]);
  assert.equal(plain.code, 1);
  assert.equal(
    plain.stderr,
    `deltaship: no repository at ${tmp.path}/r (check --repo and $DELTASHIP_REPO; pull creates one)\n`,
  );
  const debug = await runCli(["--repo", `${tmp.path}/r`, "inspect", "nothing"], { DELTASHIP_DEBUG: "1" });
  assert.equal(debug.code, 1);
  assert.match(debug.stderr, /^\s+at /m);
});

Deno.test("global options are accepted after the command too", async () => {
  await using tmp = await tempDir();
  await writeImage(`${tmp.path}/l`, { tag: "t", layers: [{ tar: sampleTar() }] });
  assert.equal((await runCli(["pull", `oci:${tmp.path}/l:t`, "--repo", `${tmp.path}/r`])).code, 0);
  await deltaship(`${tmp.path}/r`, "rm", "t");
  const r = await runCli(["images", "--repo", `${tmp.path}/r`, "--json", "-j", "3"]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), []);
  assert.equal((await deltaship(`${tmp.path}/r`, "images", "-q")).stdout.split("\n")[0].startsWith("NAME"), true);
});
