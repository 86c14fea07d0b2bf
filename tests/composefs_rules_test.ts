/**
 * The composefs tree rules of composefs-rs HEAD (issue 22; docs/design.md's rule
 * table): the four probes of `testdata/composefs-rs-rules/` (xattrs allowlist,
 * PAX nanoseconds, a hardlink to a symlink, a PAX global header) give the tree,
 * the C-made image and the id that composefs-rs's rules give, by default and
 * with `--xattrs keep-user-xattrs`; and one probe of ours per other rule
 * (tests/helpers/rules_probes.ts) gives the tree derived from composefs-rs's
 * code, or from the image spec and the engines where deltaship follows them, as
 * stored at pull, by compute-id and by dump.
 */
import assert from "node:assert/strict";
import { deltaship, tempDir } from "./helpers/cli.ts";
import { writeImage } from "./helpers/oci.ts";
import { listXattrs } from "./helpers/tree.ts";
import { PROBES, rawTar, withoutDirSizes } from "./helpers/rules_probes.ts";

const RULES = new URL("../testdata/composefs-rs-rules/", import.meta.url).pathname;

interface Expected {
  tag: string;
  composefs_rs_head_id: string;
  keep_user_xattrs_id: string;
}

const expected: Record<string, Expected> = JSON.parse(Deno.readTextFileSync(`${RULES}expected.json`));

/** The composefs id the record of the repository's one image names (the image its pull stored). */
function storedId(repo: string): string | undefined {
  const [record] = [...Deno.readDirSync(`${repo}/images/sha256`)];
  return JSON.parse(Deno.readTextFileSync(`${repo}/images/sha256/${record.name}`)).composefs;
}

for (const [probe, want] of Object.entries(expected)) {
  Deno.test(`composefs-rs rules: ${probe} gives composefs-rs's tree, C-made image and id`, async () => {
    await using dir = await tempDir();
    const repo = `${dir.path}/repo`;
    const pulled = await deltaship(repo, "pull", `oci:${RULES}${probe}:${want.tag}`, probe);
    assert.equal(pulled.code, 0, pulled.stderr);
    const variants: [string[], string, string][] = [[[], "rs-head", want.composefs_rs_head_id]];
    if (probe === "p01-xattrs") {
      variants.push([["--xattrs", "keep-user-xattrs"], "keep-user-xattrs", want.keep_user_xattrs_id]);
    }
    for (const [options, name, id] of variants) {
      const dump = await deltaship(repo, "dump", probe, ...options);
      assert.equal(dump.stdout, await Deno.readTextFile(`${RULES}${probe}.${name}.dump`), `${probe} ${name} dump`);
      assert.equal((await deltaship(repo, "compute-id", probe, ...options)).stdout.trim(), id, `${probe} ${name} id`);
      const out = `${dir.path}/${name}.img`;
      assert.equal((await deltaship(repo, "create-image", probe, out, ...options)).code, 0);
      assert.deepEqual(await Deno.readFile(out), await Deno.readFile(`${RULES}${probe}.${name}.v1.img`), name);
    }
    assert.equal(storedId(repo), want.composefs_rs_head_id, "the stored image is the default one");
  });
}

for (const [name, probe] of Object.entries(PROBES)) {
  Deno.test(`composefs rules: the ${name} probe gives its tree at pull, in compute-id and in dump`, async () => {
    await using dir = await tempDir();
    const repo = `${dir.path}/repo`;
    await writeImage(`${dir.path}/l`, { tag: name, layers: probe.layers.map((l) => ({ tar: rawTar(l) })) });
    const pulled = await deltaship(repo, "pull", `oci:${dir.path}/l:${name}`, name);
    assert.equal(pulled.code, 0, pulled.stderr);
    const dump = await deltaship(repo, "dump", name);
    assert.equal(dump.code, 0, dump.stderr);
    assert.equal(withoutDirSizes(dump.stdout), probe.dump + "\n");
    await Deno.writeTextFile(`${dir.path}/want.dump`, probe.dump + "\n");
    const made = await deltaship(
      repo,
      "--json",
      "create-image",
      "--from-dump",
      `${dir.path}/want.dump`,
      `${dir.path}/i`,
    );
    assert.equal(made.code, 0, made.stderr);
    const { id } = JSON.parse(made.stdout);
    assert.equal((await deltaship(repo, "compute-id", name)).stdout.trim(), id);
    assert.equal(storedId(repo), id, "the pull stored the image");
  });
}

function mountWhyNot(): string | undefined {
  if (Deno.build.os !== "linux") return "not Linux";
  if (Deno.uid() !== 0) return "not root";
  const fs = Deno.readTextFileSync("/proc/filesystems");
  for (const name of ["erofs", "overlay"]) if (!new RegExp(`\\s${name}$`, "m").test(fs)) return `no ${name}`;
  return undefined;
}
const noMount = mountWhyNot();
if (noMount) {
  if (Deno.env.get("REQUIRE_INTEROP") === "1") throw new Error(`composefs rules mount test: ${noMount}`);
  console.log(`SKIPPED composefs rules mount test: ${noMount}`);
}

Deno.test({
  name: "composefs rules: mount --xattrs keep-user-xattrs mounts the image that keeps user.* xattrs",
  ignore: noMount !== undefined,
  async fn() {
    await using dir = await tempDir();
    const repo = `${dir.path}/repo`;
    const p01 = expected["p01-xattrs"];
    assert.equal((await deltaship(repo, "pull", `oci:${RULES}p01-xattrs:${p01.tag}`, "x")).code, 0);
    for (
      const [options, id, user] of [[[], p01.composefs_rs_head_id, []], [
        ["--xattrs", "keep-user-xattrs"],
        p01.keep_user_xattrs_id,
        ["user.a"],
      ]] as [string[], string, string[]][]
    ) {
      const target = await Deno.makeTempDir({ dir: dir.path, prefix: "mnt-" });
      const m = await deltaship(repo, "--json", "mount", "x", target, ...options);
      assert.equal(m.code, 0, m.stderr);
      try {
        assert.equal(JSON.parse(m.stdout).id, id);
        const names = Object.keys(listXattrs(`${target}/usr/bin/ping`)).filter((n) => n.startsWith("user."));
        assert.deepEqual(names, user, options.join(" "));
      } finally {
        assert.equal((await deltaship(repo, "umount", target)).code, 0);
      }
    }
  },
});
