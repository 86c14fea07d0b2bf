import assert from "node:assert/strict";
import { TerminalProgress } from "../src/cli/progress.ts";
import { formatBytes } from "../src/cli/format.ts";
import { runCli, tempDir } from "./helpers/cli.ts";
import { sampleTar, writeImage } from "./helpers/oci.ts";

Deno.test("the terminal display draws one line per unit, redraws in place and ends with a summary", () => {
  const out: string[] = [];
  const p = new TerminalProgress((b) => out.push(new TextDecoder().decode(b)), 80);
  p.start("sha256:aaaa", "layer 1/2", 2_000_000);
  p.start("sha256:bbbb", "layer 2/2", 0);
  p.advance("sha256:aaaa", 1_000_000);
  p.finish("sha256:bbbb", "already present");
  p.end("Pulled x");
  const text = out.join("");
  assert.match(text, /layer 1\/2\s+sha256:aaaa\s+1\.00 MB \/ 2\.00 MB/);
  assert.match(text, /layer 2\/2\s+sha256:bbbb\s+0 B\s+already present/);
  assert.match(text, /Pulled x\n$/);
  // deno-lint-ignore no-control-regex
  const ansi = /\x1b\[[0-9]*[A-K]|\r/g;
  for (const line of text.split("\n")) assert.ok(line.replace(ansi, "").length < 80, line);
  // Ended, the display owns no rows: a later unit is drawn below the summary, never over it.
  const before = out.length;
  p.start("sha256:cccc", "layer 3", 10);
  p.end();
  // deno-lint-ignore no-control-regex
  assert.doesNotMatch(out.slice(before).join(""), /\x1b\[\d*A/, "moved the cursor up after the end");
  assert.match(out.slice(before).join(""), /layer 3\s+sha256:cccc/);
});

Deno.test("progress goes to stderr only when asked or on a terminal; stdout keeps the result", async () => {
  await using tmp = await tempDir();
  await writeImage(`${tmp.path}/l`, { tag: "t", layers: [{ tar: sampleTar() }] });
  const always = await runCli(["--repo", `${tmp.path}/r1`, "--progress", "always", "pull", `oci:${tmp.path}/l:t`]);
  assert.equal(always.code, 0);
  assert.match(always.stderr, /layer 1\/1/);
  assert.match(always.stdout, /^Pulled t /);
  const auto = await runCli(["--repo", `${tmp.path}/r2`, "pull", `oci:${tmp.path}/l:t`]);
  assert.equal(auto.stderr, "");
});

Deno.test("sizes are formatted with decimal units", () => {
  assert.equal(formatBytes(999), "999 B");
  assert.equal(formatBytes(1000), "1.00 kB");
  assert.equal(formatBytes(45_600_000), "45.6 MB");
  assert.equal(formatBytes(125_000_000_000), "125 GB");
});
