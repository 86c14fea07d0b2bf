/**
 * registries.conf as containers/image reads it (pkg/sysregistriesv2): which
 * table an image picks (longest prefix, whole components, `*.domain`), where a
 * pull goes (mirrors by kind of reference, then the primary location, the
 * name rewritten), which files are read and how drop-ins merge, and the
 * configurations refused.
 */
import assert from "node:assert/strict";
import { FormatError, InvalidArgumentError } from "../src/errors.ts";
import { parseDockerReference } from "../src/transport/docker/reference.ts";
import {
  findRegistry,
  loadRegistriesConf,
  matchPrefix,
  parseRegistriesConf,
  pullSources,
  type RegistriesConf,
} from "../src/transport/docker/registries_conf.ts";
import { formatDockerReference } from "../src/transport/docker/reference.ts";
import { tempDir } from "./helpers/cli.ts";

const CONF = `
unqualified-search-registries = ["docker.io"]

[[registry]]
prefix = "example.com"
location = "primary.example.com:5000"

[[registry.mirror]]
location = "mirror-all.local:5000/cache"

[[registry.mirror]]
location = "mirror-digest.local"
pull-from-mirror = "digest-only"

[[registry.mirror]]
location = "mirror-tag.local"
pull-from-mirror = "tag-only"
insecure = true

[[registry]]
prefix = "example.com/team/app"
location = "127.0.0.1:5001/team-app"
blocked = false

[[registry]]
location = "blocked.example.com"
blocked = true

[[registry]]
prefix = "*.corp.example"
insecure = true

[aliases]
"app" = "example.com/team/app"
`;

function conf(text = CONF): RegistriesConf {
  return { registries: parseRegistriesConf(text, "/etc/containers/registries.conf", false), files: [] };
}

function where(ref: string, c = conf()): string[] {
  return pullSources(c, parseDockerReference(ref)).map((s) =>
    `${s.mirror ? "mirror " : ""}${formatDockerReference(s.reference)}${s.endpoint.insecure ? " insecure" : ""}`
  );
}

Deno.test("registries.conf: prefixes match whole components, the longest wins, *.domain matches subdomains", () => {
  assert.equal(matchPrefix("example.com/a", "example.com"), "example.com".length);
  assert.equal(matchPrefix("example.com", "example.com"), "example.com".length);
  assert.equal(matchPrefix("example.comx/a", "example.com"), -1);
  assert.equal(matchPrefix("example.com/team/apple", "example.com/team/app"), -1);
  assert.equal(matchPrefix("a.b.corp.example/x", "*.corp.example"), "a.b.corp.example".length);
  assert.equal(matchPrefix("corp.example/x", "*.corp.example"), -1);
  assert.equal(matchPrefix("other.example/x.corp.example", "*.corp.example"), -1);
  const c = conf();
  assert.equal(findRegistry(c, "example.com/team/app")?.prefix, "example.com/team/app");
  assert.equal(findRegistry(c, "example.com/team/apple")?.prefix, "example.com");
  assert.equal(findRegistry(c, "x.corp.example/y")?.insecure, true);
  assert.equal(findRegistry(c, "docker.io/library/alpine"), undefined);
});

Deno.test("registries.conf: mirrors first (by kind of reference), then the primary, names rewritten", () => {
  const digest = `sha256:${"a".repeat(64)}`;
  assert.deepEqual(where("example.com/x/y:v1"), [
    "mirror mirror-all.local:5000/cache/x/y:v1",
    "mirror mirror-tag.local/x/y:v1 insecure",
    "primary.example.com:5000/x/y:v1",
  ]);
  assert.deepEqual(where(`example.com/x/y@${digest}`), [
    `mirror mirror-all.local:5000/cache/x/y@${digest}`,
    `mirror mirror-digest.local/x/y@${digest}`,
    `primary.example.com:5000/x/y@${digest}`,
  ]);
  assert.deepEqual(where("example.com/team/app:v2"), ["127.0.0.1:5001/team-app:v2"]);
  assert.deepEqual(where("a.corp.example/img:v1"), ["a.corp.example/img:v1 insecure"]); // no location: no rewrite
  assert.deepEqual(where("quay.io/img:v1"), ["quay.io/img:v1"]); // no table
  const byDigestOnly = conf(`[[registry]]
location = "example.com"
mirror-by-digest-only = true
[[registry.mirror]]
location = "m.local"`);
  assert.deepEqual(where("example.com/a:v1", byDigestOnly), ["example.com/a:v1"]);
  assert.deepEqual(where(`example.com/a@sha256:${"b".repeat(64)}`, byDigestOnly).length, 2);
});

Deno.test("registries.conf: version 1 lists, and the configurations containers/image refuses", () => {
  const v1 = conf(`[registries.insecure]
registries = ["old.local:5000"]
[registries.block]
registries = ["bad.local"]`);
  assert.equal(findRegistry(v1, "old.local:5000/a")?.insecure, true);
  assert.equal(findRegistry(v1, "bad.local/a")?.blocked, true);
  for (
    const [text, message] of [
      ["[[registry]]\nlocation = 'https://x.local'", /URL schemes are not allowed/],
      ["[[registry]]\ninsecure = true", /neither location nor prefix/],
      ["[[registry]]\nprefix = 'x.local'", /location is unset/],
      ["[[registry]]\nprefix = '*.x.local/ns'", /wildcard prefix/],
      ["[[registry]]\nlocation = 'x.local'\npull-from-mirror = 'all'", /for mirrors only/],
      [
        "[[registry]]\nlocation = 'x.local'\n[[registry.mirror]]\nlocation = 'm'\npull-from-mirror = 'some'",
        /all, digest-only/,
      ],
      ["[[registry]]\nlocation = 'x.local'\ninsecure = 'yes'", /insecure must be true or false/],
      [
        "[[registry]]\nprefix = 'a.local'\nlocation = 'x.local'\n[[registry]]\nprefix = 'b.local'\nlocation = 'x.local'\ninsecure = true",
        /defined twice with different insecure/,
      ],
      ["[registries.search]\nregistries = ['a']\n[[registry]]\nlocation = 'x'", /mixes the version 1/],
      ["[[registry]\nlocation = 'x'", /not valid TOML \(line 1/],
    ] as const
  ) {
    assert.throws(() => conf(text), (e: unknown) => e instanceof FormatError && message.test(e.message), text);
  }
  assert.throws(() => parseRegistriesConf("[registries.insecure]\nregistries = ['a']", "d.conf", true), /version 2/);
  // A location that rewrites a name to one without a registry host.
  assert.throws(
    () => where("example.com/x:v1", conf("[[registry]]\nprefix = 'example.com'\nlocation = 'nohost'")),
    /not a reference with a registry host/,
  );
});

Deno.test("registries.conf: files read, drop-ins merged by prefix, the user's file instead of the system's", async () => {
  await using tmp = await tempDir();
  const root = `${tmp.path}/root`;
  const home = `${tmp.path}/home`;
  const write = async (path: string, text: string) => {
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(path, text);
  };
  await write(`${root}/etc/containers/registries.conf`, "[[registry]]\nlocation = 'a.local'\ninsecure = true\n");
  await write(`${root}/etc/containers/registries.conf.d/10-b.conf`, "[[registry]]\nlocation = 'b.local'\n");
  await write(
    `${root}/etc/containers/registries.conf.d/20-a.conf`,
    "[[registry]]\nlocation = 'a.local'\nblocked = true\n",
  );
  await write(`${root}/etc/containers/registries.conf.d/ignored.txt`, "not toml at all [");
  const env = { DELTASHIP_SYSTEM_ROOT: root, HOME: home };
  const c = await loadRegistriesConf(env);
  assert.deepEqual(c.registries.map((r) => [r.prefix, r.insecure, r.blocked]), [["a.local", false, true], [
    "b.local",
    false,
    false,
  ]]);
  assert.equal(c.files.length, 3);
  await write(`${tmp.path}/explicit.conf`, "[[registry]]\nlocation = 'c.local'\n");
  const viaEnv = await loadRegistriesConf({ ...env, CONTAINERS_REGISTRIES_CONF: `${tmp.path}/explicit.conf` });
  assert.deepEqual(viaEnv.registries.map((r) => r.prefix), ["a.local", "b.local", "c.local"]); // drop-ins still apply
  await write(`${tmp.path}/flag.conf`, "[[registry]]\nlocation = 'd.local'\n");
  const viaFlag = await loadRegistriesConf(
    { ...env, CONTAINERS_REGISTRIES_CONF: `${tmp.path}/explicit.conf` },
    `${tmp.path}/flag.conf`,
  );
  assert.ok(
    viaFlag.registries.some((r) => r.prefix === "d.local") && !viaFlag.registries.some((r) => r.prefix === "c.local"),
  );
  await assert.rejects(loadRegistriesConf(env, `${tmp.path}/missing.conf`), InvalidArgumentError);
  // A user's registries.conf replaces the system's, and only the user's drop-ins are read.
  await write(`${home}/.config/containers/registries.conf`, "[[registry]]\nlocation = 'u.local'\n");
  assert.deepEqual((await loadRegistriesConf(env)).registries.map((r) => r.prefix), ["u.local"]);
});
