/**
 * What can be checked here of the single executable, short of running one
 * (`deno compile` needs a runtime download this machine cannot make): that the
 * workers are loaded by URLs `--include` embeds, that nothing reads files next
 * to main.ts at run time, that the compile permissions suffice, and that
 * `deno compile` accepts the task's arguments and builds the graph.
 */
import assert from "node:assert/strict";
import { compileArgs, INCLUDES, PERMISSIONS } from "../scripts/compile.ts";
import config from "../deno.json" with { type: "json" };
import { tempDir } from "./helpers/cli.ts";
import { sampleTar, writeImage } from "./helpers/oci.ts";
import { buildTar } from "./helpers/tar.ts";
import { canMount } from "./helpers/interop.ts";

const root = new URL("../", import.meta.url).pathname;
const dec = new TextDecoder();

function sources(dir = `${root}src`): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...sources(p));
    else if (p.endsWith(".ts")) out.push(p);
  }
  return out;
}

Deno.test("every worker module URL is one the compile task --includes", () => {
  // Worker modules are named by constants `const X = new URL("./...ts", import.meta.url)` (the only use of
  // import.meta the next test allows) and handed to the worker pool, which starts `new Worker(url)`.
  let urls = 0;
  for (const file of [...sources(), `${root}main.ts`]) {
    const text = Deno.readTextFileSync(file);
    for (const m of text.matchAll(/const \w+ = new URL\("([^"]+)", import\.meta\.url\)/g)) {
      urls++;
      const module = new URL(m[1], `file://${file}`).pathname.slice(root.length);
      assert.ok(INCLUDES.includes(module), `${module} is a worker but not in the compile --include list`);
      assert.ok(Deno.statSync(`${root}${module}`).isFile);
    }
    assert.doesNotMatch(text, /new Worker\(\s*["'`]/, `${file}: a Worker URL given as a string is not embedded`);
    assert.doesNotMatch(text, /new Worker\(\s*new URL/, `${file}: name the worker module URL in a constant`);
  }
  assert.ok(urls >= 1);
});

Deno.test("no module finds files through its own location, except worker entry points", () => {
  for (const file of [...sources(), `${root}main.ts`]) {
    for (const line of Deno.readTextFileSync(file).split("\n")) {
      if (!/import\.meta\.(url|dirname|filename|resolve)/.test(line)) continue;
      assert.match(line, /^const \w+ = new URL\("\.\/[\w/]+\.ts", import\.meta\.url\);$/, `${file}: ${line}`);
    }
  }
});

/** A `deno run` of main.ts with the compiled binary's permissions, file access limited to `read`. */
function restricted(read: string[], write: string, args: string[]): Deno.Command {
  const perms = PERMISSIONS.map((p) =>
    p === "--allow-read" ? `--allow-read=${read.join(",")}` : p === "--allow-write" ? `--allow-write=${write}` : p
  );
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", ...perms, `${root}main.ts`, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { DELTASHIP_DEBUG: "1" },
  });
}

Deno.test("the CLI works with the compiled permissions and reads no file of its own at run time", async () => {
  await using tmp = await tempDir();
  await writeImage(`${tmp.path}/l`, { tag: "t", layers: [{ tar: sampleTar("x") }, { tar: sampleTar("y") }] });
  // Deno allows creating symlinks only with unscoped read and write permission (as the
  // binary has), so the restricted checkout below is of an image without symlinks.
  await writeImage(`${tmp.path}/l`, {
    tag: "nosym",
    layers: [{
      tar: buildTar([{ path: "d/", type: "dir" }, { path: "d/f", content: "f" }, {
        path: "h",
        type: "hardlink",
        linkname: "d/f",
      }]),
    }],
  });
  const repo = `${tmp.path}/repo`;
  await Deno.mkdir(`${tmp.path}/mnt`);
  const steps = [
    ["--version"],
    ["pull", `oci:${tmp.path}/l:t`, "app"],
    ["pull", `oci:${tmp.path}/l:nosym`],
    ["images"],
    ["export", "app", `oci-archive:${tmp.path}/out.tar`, "--compression", "zstd"],
    ["export", "app", `oci:${tmp.path}/out`],
    ["checkout", "nosym", `${tmp.path}/co`],
    ["compute-id", "nosym"],
    ["create-image", "nosym", `${tmp.path}/nosym.cfs`],
    ["dump", "nosym"],
    ...(canMount("mount and umount with the compiled permissions")
      ? [["mount", "nosym", `${tmp.path}/mnt`], ["umount", `${tmp.path}/mnt`]]
      : []),
    ["untag", "app"],
    ["gc"],
    ["fsck"],
  ];
  // Single-threaded, nothing but the temporary directory is readable: the program's
  // own files (deno.json, testdata, sources) are out of reach, as in the binary.
  for (const step of steps) {
    const out = await restricted([tmp.path], tmp.path, ["--repo", repo, "-j", "1", ...step]).output();
    assert.equal(out.code, 0, `${step.join(" ")}: ${dec.decode(out.stderr)}`);
    if (step[0] === "--version") assert.equal(dec.decode(out.stdout), `deltaship ${config.version}\n`);
  }
  // With workers: `deno run` must read the worker modules to load them (the binary embeds
  // them); the source directory is all that is added.
  for (const step of [["pull", `oci:${tmp.path}/l:t`, "app2"], ["export", "app2", `oci:${tmp.path}/out2`]]) {
    const out = await restricted([tmp.path, `${root}src`], tmp.path, ["--repo", repo, "-j", "2", ...step]).output();
    assert.equal(out.code, 0, `${step.join(" ")}: ${dec.decode(out.stderr)}`);
  }
});

Deno.test("deno compile accepts the task's arguments and builds the module graph", async () => {
  assert.equal(config.tasks.compile, "deno run --allow-run --allow-read scripts/compile.ts");
  assert.deepEqual(compileArgs().slice(-3), ["--output", "dist/deltaship", "main.ts"]);
  // Issue 15: a 1 MiB young generation per isolate (dead chunk buffers freed sooner), as the bench runs it.
  assert.ok(compileArgs().includes("--v8-flags=--max-semi-space-size=1"), compileArgs().join(" "));
  assert.deepEqual(compileArgs("aarch64-apple-darwin").slice(-5), [
    "--target",
    "aarch64-apple-darwin",
    "--output",
    "dist/deltaship-aarch64-apple-darwin",
    "main.ts",
  ]);
  await using tmp = await tempDir();
  // The runtime deno compile would download cannot be fetched here; DENORT_BIN (a deno
  // compile feature) points it at a stand-in, which is enough to check, type-check
  // and embed the whole graph, worker included.
  const out = await new Deno.Command(Deno.execPath(), {
    args: compileArgs(undefined, `${tmp.path}/deltaship`),
    cwd: root,
    env: { DENORT_BIN: Deno.execPath(), NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = dec.decode(out.stdout) + dec.decode(out.stderr);
  assert.equal(out.code, 0, text);
  assert.match(text, /Embedded Files/);
  assert.match(text, /\bsrc\b/);
  assert.ok(Deno.statSync(`${tmp.path}/deltaship`).isFile);
});

Deno.test("the demo runs end to end through an executable (--bin), with the compiled permissions", async () => {
  await using tmp = await tempDir();
  const bin = `${tmp.path}/deltaship`;
  // Stands in for dist/deltaship: main.ts run with exactly the permissions compiled in.
  await Deno.writeTextFile(
    bin,
    `#!/bin/sh\nexec "${Deno.execPath()}" run --quiet ${PERMISSIONS.join(" ")} "${root}main.ts" "$@"\n`,
  );
  await Deno.chmod(bin, 0o755);
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", `${root}scripts/demo.ts`, "--bin", bin],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = dec.decode(out.stdout);
  assert.equal(out.code, 0, text + dec.decode(out.stderr));
  for (const cmd of ["pull", "images", "checkout", "fsck"]) {
    assert.match(text, new RegExp(`\\$ deltaship ${cmd}`));
  }
  assert.match(text, /^Pulled app-v2 from delta /m);
  assert.match(text, /^fetched .* of delta instead of .* for the full image \(\d+% saved\)$/m);
  assert.match(text, /^ok: /m);
});
