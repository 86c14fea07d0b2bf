import assert from "node:assert/strict";
import { Context } from "../src/cli/context.ts";
import { TerminalProgress } from "../src/cli/progress.ts";
import { displayLine, ellipsize, escapeBytes, escapeControl } from "../src/util/text.ts";
import { deltaship, tempDir } from "./helpers/cli.ts";
import { putBlob, sampleTar, writeImage } from "./helpers/oci.ts";

/** A window-title change and a screen clear: what a hostile string carries. */
const HOSTILE = "\x1b]0;pwned\x07\x1b[2J";
/** The same, as deltaship must print it. */
const ESCAPED = "\\x1b]0;pwned\\x07\\x1b[2J";

/** Fails if `text` holds any character a terminal acts on (C0 but newline, DEL, C1). */
function assertNoControls(text: string, what: string): void {
  // deno-lint-ignore no-control-regex
  const raw = /[\x00-\x09\x0b-\x1f\x7f-\x9f]/.exec(text);
  assert.equal(raw, null, `${what} holds a raw control character at ${raw?.index}: ${JSON.stringify(text)}`);
}

Deno.test("escapeControl turns C0, DEL and C1 controls into \\xNN and keeps everything else", () => {
  assert.equal(escapeControl(`a${HOSTILE}b`), `a${ESCAPED}b`);
  assert.equal(escapeControl("\x00\x7f\x80\x9b\x9f\xa0é→"), "\\x00\\x7f\\x80\\x9b\\x9f\xa0é→");
  assert.equal(escapeControl("two\nlines\r\n"), "two\\x0alines\\x0d\\x0a");
  assert.equal(escapeControl("two\nlines\r\n", { newlines: true }), "two\nlines\\x0d\n");
  assert.equal(escapeBytes(new TextEncoder().encode("ok \\ é\x1b")), "ok \\x5c \\xc3\\xa9\\x1b");
});

Deno.test("displayLine shortens long words and long lines in the middle, never splitting an escape", () => {
  const path = `/tmp/${"x".repeat(5000)}/end`;
  const line = displayLine(`cannot write ${path}: no space`);
  assert.ok(line.length <= 200, `${line.length}`);
  assert.match(line, /^cannot write \/tmp\/x+…x+\/end: no space$/);
  assert.equal(ellipsize("abcdef", 5), "ab…ef");
  const escapes = ellipsize(escapeControl("\x1b".repeat(50)), 9);
  assert.equal(escapes, "\\x1b".repeat(4) + "…" + "\\x1b".repeat(4));
  const long = displayLine("word ".repeat(400));
  assert.ok(long.length <= 800 && long.includes("…"), `${long.length}`);
  const digests = `layer sha256:${"a".repeat(64)} (tar-diff sha256:${
    "b".repeat(64)
  }): digest mismatch: expected sha256:${"c".repeat(64)}, got sha256:${"d".repeat(64)}; ${"/a/path".repeat(17)}`;
  assert.equal(displayLine(digests), digests, "our longest messages are kept whole");
});

Deno.test("a registry's error body is printed with its control characters escaped", async () => {
  await using tmp = await tempDir();
  const body = JSON.stringify({ errors: [{ code: "MANIFEST_UNKNOWN", message: `${HOSTILE}\x9b2J gone` }] });
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response(body, { status: 404, headers: { "content-type": "application/json" } }),
  );
  const r = await deltaship(`${tmp.path}/repo`, "pull", `docker://127.0.0.1:${server.addr.port}/app:v1`);
  assert.equal(r.code, 1, r.stderr);
  assert.ok(r.stderr.includes(`${ESCAPED}\\x9b2J gone`), r.stderr);
  assertNoControls(r.stderr, "stderr");
  assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
});

Deno.test("media types from a manifest are printed escaped", async () => {
  await using tmp = await tempDir();
  const layout = `${tmp.path}/l`;
  const img = await writeImage(layout, { tag: "t", layers: [{ tar: sampleTar() }] });
  const manifest = JSON.parse(new TextDecoder().decode(img.manifestBytes));
  manifest.config.mediaType = `application/x-${HOSTILE}`;
  manifest.layers[0].mediaType = `application/foreign-${HOSTILE}`;
  const bytes = new TextEncoder().encode(JSON.stringify(manifest));
  const digest = await putBlob(layout, bytes);
  await Deno.writeTextFile(
    `${layout}/index.json`,
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        digest,
        size: bytes.length,
        annotations: { "org.opencontainers.image.ref.name": "t" },
      }],
    }),
  );
  const r = await deltaship(`${tmp.path}/repo`, "pull", `oci:${layout}:t`);
  assert.equal(r.code, 1, r.stderr);
  assert.ok(r.stderr.includes(`application/x-${ESCAPED}`), r.stderr);
  assertNoControls(r.stderr, "stderr");
});

Deno.test("text output (print, note) escapes controls but keeps newlines", async () => {
  const out: string[] = [];
  const sink = {
    isTerminal: false,
    write: (b: Uint8Array) => (out.push(new TextDecoder().decode(b)), Promise.resolve()),
  };
  const ctx = new Context({ stdout: sink, stderr: sink, env: {} }, { repo: "/nonexistent" });
  await ctx.print(`media type ${HOSTILE}\nnext line`);
  await ctx.note(`note: ${HOSTILE}`);
  assert.deepEqual(out, [`media type ${ESCAPED}\nnext line\n`, `note: ${ESCAPED}\n`]);
});

Deno.test("progress labels and notes are escaped (the display's own cursor moves aside)", () => {
  let out = "";
  const progress = new TerminalProgress((b) => void (out += new TextDecoder().decode(b)), 400);
  progress.start(`id${HOSTILE}`, `layer ${HOSTILE}`, 10);
  progress.finish(`id${HOSTILE}`, `note ${HOSTILE}`);
  progress.end(`summary ${HOSTILE}`);
  assert.ok(out.includes(`layer ${ESCAPED}`) && out.includes(`note ${ESCAPED}`), out);
  assert.ok(out.includes(`summary ${ESCAPED}`), out);
  assertNoControls(out.replaceAll("\r\x1b[2K", ""), "progress output");
});

Deno.test("--json output with hostile strings is valid JSON with no raw controls", async () => {
  await using tmp = await tempDir();
  const hostile = `amd64${HOSTILE}\x7f\x9b2J`;
  await writeImage(`${tmp.path}/l`, {
    tag: "t",
    layers: [{ tar: sampleTar() }],
    config: { architecture: hostile },
  });
  const repo = `${tmp.path}/repo`;
  assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/l:t`, "app")).code, 0);
  const json = await deltaship(repo, "--json", "inspect", "app");
  assert.equal(json.code, 0, json.stderr);
  assertNoControls(json.stdout, "inspect --json");
  assert.equal(JSON.parse(json.stdout).platform.architecture, hostile, "the value itself survives the round trip");
});

Deno.test("a JSON parse error shows a short escaped snippet, not the file (index.json a symlink to a secret)", async () => {
  await using tmp = await tempDir();
  const secret = `${tmp.path}/shadow`;
  await Deno.writeTextFile(secret, `root:$6$secret${HOSTILE}:19000:0:99999:7:::\nTAIL-NOT-SHOWN${"z".repeat(5000)}\n`);
  const layout = `${tmp.path}/l`;
  await writeImage(layout, { tag: "t", layers: [{ tar: sampleTar() }] });
  await Deno.remove(`${layout}/index.json`);
  await Deno.symlink(secret, `${layout}/index.json`);
  const r = await deltaship(`${tmp.path}/repo`, "pull", `oci:${layout}:t`);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /index\.json is not valid JSON \(it starts with "root:\$6\$secret\\x1b\]0;pwned\\x07/);
  assertNoControls(r.stderr, "stderr");
  assert.doesNotMatch(r.stderr, /TAIL-NOT-SHOWN/);
  assert.ok(r.stderr.length < 250, `short: ${r.stderr.length} characters`);
  assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
});
