import assert from "node:assert/strict";
import YAML from "yaml";
import { RELEASE_TARGETS } from "../scripts/compile.ts";

const root = new URL("../", import.meta.url).pathname;

interface Step {
  name?: string;
  uses?: string;
  run?: string;
  with?: Record<string, string>;
  env?: Record<string, string>;
  "working-directory"?: string;
}

interface Workflow {
  on: Record<string, unknown>;
  permissions?: Record<string, string>;
  jobs: Record<string, { "runs-on": string; steps: Step[] }>;
}

/** Parses a workflow strictly (duplicate keys and other YAML errors fail). */
function workflow(name: string): Workflow {
  const doc = YAML.parseDocument(Deno.readTextFileSync(`${root}.github/workflows/${name}`), { uniqueKeys: true });
  assert.deepEqual(doc.errors, [], `${name}: ${doc.errors.join("; ")}`);
  return doc.toJS() as Workflow;
}

/** The steps of a workflow's only job; only the two actions that exist for it are used. */
function steps(w: Workflow): Step[] {
  const jobs = Object.values(w.jobs);
  assert.equal(jobs.length, 1);
  const all = jobs[0].steps;
  const uses = all.filter((s) => s.uses).map((s) => s.uses);
  assert.deepEqual(uses, ["actions/checkout@v4", "denoland/setup-deno@v2"]);
  const deno = all.find((s) => s.uses?.startsWith("denoland/setup-deno"))!;
  const pinned = /DENO_VERSION=(\S+)/.exec(Deno.readTextFileSync(`${root}.ci/run`))![1];
  assert.equal(deno.with?.["deno-version"], `v${pinned}`, "the Deno CI installs is the one .ci/run pins");
  return all;
}

const runs = (all: Step[]) => all.map((s) => s.run ?? "").join("\n");

Deno.test("ci.yml: check, test as root with the interop tools required, compile, smoke-run the binary", () => {
  const w = workflow("ci.yml");
  assert.deepEqual(Object.keys(w.on).sort(), ["pull_request", "push"]);
  const all = steps(w);
  const script = runs(all);
  // Every Debian package .ci/run may install, so REQUIRE_INTEROP=1 finds every tool there too.
  const install = /apt-get install .*/.exec(script)?.[0] ?? "";
  const ciRun = Deno.readTextFileSync(`${root}.ci/run`);
  const packages = [...ciRun.matchAll(/\[[\w-]+\]=([\w.-]+)/g)].map((m) => m[1]);
  if (ciRun.includes("need+=(time)")) packages.push("time");
  assert.ok(packages.length >= 7, packages.join());
  for (const pkg of packages) {
    assert.match(install, new RegExp(`\\b${pkg}\\b`), `ci.yml installs ${pkg}`);
  }
  const order = ["deno task check", "deno task test", "deno task compile", "./dist/deltaship --version"];
  const at = order.map((cmd) => all.findIndex((s) => s.run?.includes(cmd)));
  assert.ok(at.every((i, k) => i >= 0 && (k === 0 || i > at[k - 1])), `steps in order: ${order.join(", ")}`);
  assert.equal(all[at[1]].env?.REQUIRE_INTEROP, "1");
  // As root, as .ci/run runs (CI images run it as root): the root-only tests run, and fail under
  // REQUIRE_INTEROP=1 rather than skip. sudo resets the environment: PATH and REQUIRE_INTEROP are passed on,
  // and -H gives root its own HOME (Deno's cache), so the later steps, as the runner, own theirs.
  assert.match(all[at[1]].run!, /^sudo -H env "PATH=\$PATH" REQUIRE_INTEROP="\$REQUIRE_INTEROP" deno task test$/);
  assert.match(script, /scripts\/demo\.ts --bin \.\/dist\/deltaship/);
});

Deno.test("release.yml: on v* tags, builds four targets, SHA256SUMS, attached with gh", () => {
  const w = workflow("release.yml");
  assert.deepEqual(w.on, { push: { tags: ["v*"] } });
  assert.equal(w.permissions?.contents, "write");
  const all = steps(w);
  const script = runs(all);
  const loop = /for target in ([^;]+); do\s+deno task compile --target "\$target"/.exec(script);
  assert.ok(loop, "builds each target with deno task compile --target");
  assert.deepEqual(loop[1].trim().split(/\s+/), [...RELEASE_TARGETS]);
  const sums = all.find((s) => s.run?.includes("SHA256SUMS"))!;
  assert.equal(sums["working-directory"], "dist");
  assert.match(sums.run!, /sha256sum deltaship-\* > SHA256SUMS/);
  const publish = all[all.length - 1];
  assert.equal(publish.env?.GH_TOKEN, "${{ github.token }}");
  assert.match(publish.run!, /gh release create "\$GITHUB_REF_NAME" dist\/deltaship-\* dist\/SHA256SUMS/);
  assert.match(publish.run!, /gh release upload "\$GITHUB_REF_NAME" dist\/deltaship-\* dist\/SHA256SUMS --clobber/);
  assert.match(script, /jq -r \.version deno\.json/);
});

Deno.test("the README installs a release binary the release workflow publishes, checking SHA256SUMS", () => {
  const readme = Deno.readTextFileSync(`${root}README.md`);
  const start = readme.indexOf("\n## Install\n");
  const install = readme.slice(start, readme.indexOf("\n## ", start + 1));
  assert.match(install, /SHA256SUMS/);
  assert.match(install, /sha256sum --check --ignore-missing SHA256SUMS/);
  for (const target of RELEASE_TARGETS) assert.ok(install.includes(target), target);
  assert.match(readme, /^deno task demo /m);
  assert.match(readme, /^deno task test /m);
});
