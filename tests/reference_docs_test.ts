/**
 * The command reference cannot drift: docs/cli.md and docs/deltaship.1 are
 * exactly what the generator makes from the command definitions now (`deno task
 * docs` rewrites them), the man page renders without warnings, and the shell
 * completion scripts made from the same definitions load and complete.
 */
import assert from "node:assert/strict";
import { referenceFiles, SOURCE } from "../scripts/docs.ts";
import { optionChoices } from "../src/cli/args.ts";
import { haveTools, which } from "./helpers/interop.ts";
import { runCli, tempDir } from "./helpers/cli.ts";

const root = new URL("../", import.meta.url).pathname;

Deno.test("docs/cli.md and docs/deltaship.1 are what `deno task docs` makes from the command definitions", () => {
  for (const [path, expected] of Object.entries(referenceFiles())) {
    const actual = Deno.readTextFileSync(`${root}${path}`);
    assert.ok(actual === expected, `${path} is out of date with the command definitions: run \`deno task docs\``);
  }
});

Deno.test("the reference has every command, its synopsis and every option, and the man page every command", () => {
  const md = Deno.readTextFileSync(`${root}docs/cli.md`);
  const man = Deno.readTextFileSync(`${root}docs/deltaship.1`);
  assert.match(man, /^\.TH DELTASHIP 1 /m);
  for (const section of ["NAME", "SYNOPSIS", "DESCRIPTION", "GLOBAL OPTIONS", "COMMANDS", "ENVIRONMENT", "SEE ALSO"]) {
    assert.match(man, new RegExp(`^\\.SH ${section}$`, "m"), section);
  }
  for (const o of SOURCE.globals) assert.ok(md.includes(`--${o.name}`) && man.includes(`\\-\\-${o.name}`), o.name);
  for (const cmd of SOURCE.commands) {
    assert.ok(md.includes(`\n## ${cmd.name}\n\n\`\`\`\ndeltaship [global options] ${cmd.name}`), cmd.name);
    assert.ok(man.includes(`\n.SS ${cmd.name.replace(/-/g, "\\-")}\n`), cmd.name);
    const section = md.slice(md.indexOf(`\n## ${cmd.name}\n`) + 1).split("\n## ")[0];
    assert.ok(section.includes(cmd.usage), `${cmd.name}: usage`);
    for (const o of cmd.options) {
      assert.ok(o.help.trim() !== "", `${cmd.name} --${o.name} has a description`);
      assert.match(section, new RegExp(`^- \`(-${o.short}, )?--${o.name}[ \`]`, "m"), `${cmd.name} --${o.name}`);
    }
    for (const e of cmd.examples ?? []) assert.ok(section.includes(e.split("  # ")[0]), `${cmd.name}: ${e}`);
  }
});

Deno.test("options of the same name complete the same way in every command", () => {
  const seen = new Map<string, string>();
  for (const o of [...SOURCE.globals, ...SOURCE.commands.flatMap((c) => c.options)]) {
    const how = JSON.stringify([o.type, optionChoices(o) ?? null, o.path ?? null]);
    assert.equal(seen.get(o.name) ?? how, how, `--${o.name}`);
    seen.set(o.name, how);
  }
});

Deno.test("the man page renders without warnings", async () => {
  if (!haveTools("man page rendering", "groff")) return;
  const out = await new Deno.Command("groff", {
    args: ["-man", "-Tutf8", "-ww", "-z", `${root}docs/deltaship.1`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0);
  assert.equal(new TextDecoder().decode(out.stderr), "", "groff warnings");
  const text = await new Deno.Command("groff", {
    args: ["-man", "-Tutf8", "-P-c", `${root}docs/deltaship.1`],
    stdout: "piped",
    env: { LC_ALL: "C.UTF-8" },
  }).output();
  const rendered = new TextDecoder().decode(text.stdout);
  assert.match(rendered, /deltaship - keep OCI images/);
  assert.match(rendered, /--authfile FILE/);
  assert.match(rendered, /deltaship pull oci:\.\/layout:sha256:4f3c…/);
});

/** Runs `script` in bash after loading the bash completion script; returns its stdout. */
async function bash(script: string): Promise<string> {
  await using tmp = await tempDir();
  const r = await runCli(["completions", "bash"]);
  assert.equal(r.code, 0, r.stderr);
  await Deno.writeTextFile(`${tmp.path}/deltaship.bash`, r.stdout);
  await Deno.mkdir(`${tmp.path}/layouts/app`, { recursive: true });
  await Deno.writeTextFile(`${tmp.path}/layouts/app.tar`, "");
  const out = await new Deno.Command("bash", {
    args: ["--norc", "--noprofile", "-c", `source deltaship.bash\n${script}`],
    cwd: tmp.path,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  assert.equal(stderr, "");
  return new TextDecoder().decode(out.stdout);
}

/** bash lines that complete `line` as if TAB were pressed at its end and print the candidates, one a line. */
function tab(line: string): string {
  return `COMP_LINE=${JSON.stringify(line)}; COMP_POINT=\${#COMP_LINE}; COMPREPLY=(); _deltaship deltaship\n` +
    `printf '%s\\n' "${line}:" "\${COMPREPLY[@]}" ""\n`;
}

/** The candidates of each completed line, from {@link tab}'s output. */
function candidates(out: string): Map<string, string[]> {
  const result = new Map<string, string[]>();
  for (const block of out.split("\n\n").filter((b) => b.trim())) {
    const [head, ...rest] = block.split("\n");
    result.set(head.slice(0, -1), rest.sort());
  }
  return result;
}

/** The words option `name` may take, sorted, as its definition says. */
function choices(name: string): string[] {
  const o = [...SOURCE.globals, ...SOURCE.commands.flatMap((c) => c.options)].find((o) => o.name === name);
  return [...(o && optionChoices(o)) ?? []].sort();
}

Deno.test("bash completion: commands, options, option values, transports and paths", async () => {
  if (!haveTools("bash completion", "bash")) return;
  const lines = [
    "deltaship pu",
    "deltaship pull --auth",
    "deltaship export app --compression=",
    "deltaship export app --compression zstd:c",
    "deltaship --progress ",
    "deltaship pull oci",
    "deltaship pull oci:layouts/a",
    "deltaship checkout app lay",
    "deltaship completions ",
    "deltaship -j 4 mount --verity ",
  ];
  const out = await bash(`complete -p deltaship\n${lines.map(tab).join("")}`);
  assert.match(out, /^complete -F _deltaship deltaship$/m);
  const got = candidates(out.slice(out.indexOf("\n") + 1));
  assert.deepEqual(got.get("deltaship pu"), ["pull", "push"]);
  assert.deepEqual(got.get("deltaship pull --auth"), ["--authfile"]);
  assert.deepEqual(got.get("deltaship export app --compression="), ["gzip", "none", "zstd", "zstd:chunked"]);
  assert.deepEqual(got.get("deltaship export app --compression zstd:c"), ["chunked"]); // bash replaces after the ':'
  assert.deepEqual(got.get("deltaship --progress "), choices("progress"));
  assert.deepEqual(got.get("deltaship pull oci"), ["oci-archive:", "oci:"]);
  assert.deepEqual(got.get("deltaship pull oci:layouts/a"), ["layouts/app", "layouts/app.tar"]);
  assert.deepEqual(got.get("deltaship checkout app lay"), ["layouts"]);
  assert.deepEqual(got.get("deltaship completions "), ["bash", "fish", "zsh"]);
  assert.deepEqual(got.get("deltaship -j 4 mount --verity "), choices("verity"));
  assert.deepEqual(choices("verity"), ["auto", "off", "require"]);
});

Deno.test("bash completion of `deltaship pull --` offers pull's options and the global ones", async () => {
  if (!haveTools("bash completion", "bash")) return;
  const got = candidates(await bash(tab("deltaship pull --"))).get("deltaship pull --")!;
  const pull = SOURCE.commands.find((c) => c.name === "pull")!;
  for (const o of [...pull.options, ...SOURCE.globals]) assert.ok(got.includes(`--${o.name}`), o.name);
  assert.ok(got.includes("--authfile"));
  assert.ok(!got.includes("--compression"), "an option pull does not take");
});

/** Checks a completion script's syntax with the shell's own parser; skipped (visibly) when it is not installed. */
async function syntaxCheck(shell: "zsh" | "fish"): Promise<void> {
  // Not in CI's package list: skipped there too, but visibly.
  if (!which(shell)) return void console.log(`SKIPPED ${shell} completion syntax check: ${shell} is not installed`);
  await using tmp = await tempDir();
  const r = await runCli(["completions", shell]);
  assert.equal(r.code, 0, r.stderr);
  await Deno.writeTextFile(`${tmp.path}/script`, r.stdout);
  const out = await new Deno.Command(shell, { args: ["-n", `${tmp.path}/script`], stderr: "piped" }).output();
  assert.equal(new TextDecoder().decode(out.stderr), "");
  assert.equal(out.code, 0);
}

Deno.test("the zsh completion script parses", async () => {
  await syntaxCheck("zsh");
  const r = await runCli(["completions", "zsh"]);
  assert.match(r.stdout, /^#compdef deltaship$/m);
  assert.ok(r.stdout.includes("'--authfile=[docker\\://\\: read credentials from FILE only]:FILE:_files'"));
  assert.ok(
    r.stdout.includes(
      "'--compression=[layer compression]:gzip|zstd|zstd\\:chunked|none:(gzip zstd zstd\\:chunked none)'",
    ),
  );
});

Deno.test("the fish completion script parses and completes", async () => {
  await syntaxCheck("fish");
  if (which("fish")) {
    await using tmp = await tempDir();
    await Deno.writeTextFile(`${tmp.path}/deltaship.fish`, (await runCli(["completions", "fish"])).stdout);
    const script = `source deltaship.fish; complete -C 'deltaship pu'; complete -C 'deltaship pull --auth'`;
    const out = await new Deno.Command("fish", { args: ["-c", script], cwd: tmp.path, stdout: "piped" }).output();
    const names = new TextDecoder().decode(out.stdout).split("\n").filter((l) => l).map((l) => l.split("\t")[0]);
    assert.deepEqual(names, ["pull", "push", "--authfile"]);
  }
  const r = await runCli(["completions", "fish"]);
  assert.match(r.stdout, /^complete -c deltaship -n '__deltaship_using pull' -l authfile -r -F /m);
  assert.match(r.stdout, /^complete -c deltaship -n __deltaship_needs_command -a push -d /m);
});

Deno.test("completions refuses a shell it has no script for", async () => {
  const r = await runCli(["completions", "tcsh"]);
  assert.equal(r.code, 2);
  assert.equal(r.stderr, 'deltaship: completions: SHELL must be bash, zsh or fish, got "tcsh"\n');
});

/** A heading's GitHub anchor. */
function slug(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N}_\- ]/gu, "").replace(/ /g, "-");
}

Deno.test("every relative link of the README and docs/ reaches a file, and a heading there", () => {
  const pages = ["README.md", ...[...Deno.readDirSync(`${root}docs`)].map((e) => `docs/${e.name}`)]
    .filter((p) => p.endsWith(".md"));
  const prose = (page: string) => Deno.readTextFileSync(`${root}${page}`).replace(/```[\s\S]*?```/g, "");
  const anchors = new Map(pages.map((p) => [p, new Set([...prose(p).matchAll(/^#+ (.*)$/gm)].map((m) => slug(m[1])))]));
  const broken: string[] = [];
  for (const page of pages) {
    for (const [, url] of prose(page).matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(url)) continue;
      const [path, anchor] = url.split("#");
      const target = path ? new URL(path, `file:///${page}`).pathname.slice(1) : page;
      let exists = true;
      try {
        Deno.statSync(`${root}${target}`);
      } catch {
        exists = false;
      }
      if (!exists) broken.push(`${page}: ${url} (no such file)`);
      else if (anchor && target.endsWith(".md") && !anchors.get(target)?.has(anchor)) {
        broken.push(`${page}: ${url} (no such heading)`);
      }
    }
  }
  assert.deepEqual(broken, []);
});
