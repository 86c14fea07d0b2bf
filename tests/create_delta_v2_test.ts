import assert from "node:assert/strict";
import { TARDIFF_MEDIA_TYPE } from "../src/tardiff/format.ts";
import { concat } from "../src/util/streams.ts";
import { deltaship, tempDir } from "./helpers/cli.ts";
import { noise } from "./helpers/data.ts";
import { checkDelta, pullDelta } from "./helpers/delta.ts";
import { CASES, CASES_V2, expected, FIXTURES, FIXTURES_V2 } from "./helpers/fixtures.ts";
import { haveTools } from "./helpers/interop.ts";
import { writeImage } from "./helpers/oci.ts";
import { buildTar } from "./helpers/tar.ts";

const ZSTD = haveTools("create-delta --binary-diff zstd|auto (frames read by zstd -d --patch-from)", "zstd");

/** Creates the delta OLD → NEW with `args` into `out`; returns the --json result. */
async function create(repo: string, oldRef: string, newRef: string, out: string, ...args: string[]) {
  const r = await deltaship(repo, "--json", "create-delta", ...args, oldRef, newRef, out);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

for (const mode of ["zstd", "auto"]) {
  Deno.test({
    name:
      `create-delta --binary-diff ${mode}: every fixture case gives a tardf2 delta that zstd -d --patch-from and deltaship apply`,
    ignore: !ZSTD,
    async fn() {
      const cases = [...CASES.map((c) => [FIXTURES, c]), ...CASES_V2.map((c) => [FIXTURES_V2, c])];
      let zstdOps = 0;
      for (const [dir, name] of cases) {
        await using tmp = await tempDir();
        const fixture = `${dir}${name}`;
        const want = await expected(name, dir);
        const repo = `${tmp.path}/repo`;
        assert.equal((await deltaship(repo, "pull", `oci:${fixture}/old:old`)).code, 0);
        const result = await create(
          repo,
          "repo:old",
          `oci:${fixture}/new:new`,
          `oci:${tmp.path}/delta`,
          "--binary-diff",
          mode,
        );
        assert.equal(result.target, want.new_manifest);
        // checkDelta decodes each tar-diff with a strict reader that runs zstd -d --patch-from on each ZstdDict op.
        const checked = await checkDelta(repo, `oci:${tmp.path}/delta`);
        for (const [to, decoded] of checked.decoded) {
          assert.equal(decoded.version, 2, `${name}: ${to} is tardf2`);
          zstdOps += decoded.ops.zstdDict;
          if (mode === "zstd") assert.equal(decoded.ops.addData, 0, `${name}: zstd mode never bsdiffs`);
        }
        await pullDelta(`${tmp.path}/client`, `oci:${fixture}/old:old`, `oci:${tmp.path}/delta`, {
          manifest: want.new_manifest,
          diffIds: want.diff_ids,
        });
      }
      assert.ok(zstdOps >= 5, `${zstdOps} ZstdDict ops in all`);
    },
  });
}

/** An old and new image whose one layer holds a changed 2 MiB binary and a changed text file. */
async function pair(dir: string) {
  const bin = noise(2 << 20, 3);
  const bin2 = bin.slice();
  for (let i = 0; i < bin2.length; i += 5003) bin2[i] ^= 0xff;
  const text = new TextEncoder().encode(Array.from({ length: 30000 }, (_, i) => `entry ${i * 7}\n`).join(""));
  const text2 = concat([text.subarray(0, 100_000), new TextEncoder().encode("new line\n"), text.subarray(100_000)]);
  const layer = (b: Uint8Array, t: Uint8Array) =>
    buildTar([{ path: "opt/", type: "dir" }, { path: "opt/tool.bin", content: b }, {
      path: "opt/list.txt",
      content: t,
    }]);
  await writeImage(`${dir}/old`, { tag: "old", layers: [{ tar: layer(bin, text) }] });
  await writeImage(`${dir}/new`, { tag: "new", layers: [{ tar: layer(bin2, text2) }] });
}

/** The one tar-diff of a delta made from `pair`, decoded. */
async function decodedOf(repo: string, delta: string) {
  const checked = await checkDelta(repo, delta);
  const [decoded] = checked.decoded.values();
  const [entry] = [...checked.layers.values()];
  assert.equal(entry.mediaType, TARDIFF_MEDIA_TYPE);
  return { decoded, size: entry.size };
}

Deno.test({
  name:
    "create-delta: zstd and auto keep to --max-zstd-diff-size and --max-bsdiff-size; auto keeps the smaller; --zstd-diff-window sets the frames' window",
  ignore: !ZSTD,
  async fn() {
    await using tmp = await tempDir();
    await pair(tmp.path);
    const repo = `${tmp.path}/repo`;
    assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/old:old`)).code, 0);
    assert.equal((await deltaship(repo, "pull", `oci:${tmp.path}/new:new`)).code, 0);
    const make = async (name: string, ...args: string[]) => {
      await create(repo, "repo:old", "repo:new", `oci:${tmp.path}/${name}`, ...args);
      return await decodedOf(repo, `oci:${tmp.path}/${name}`);
    };
    const bsdiff = await make("bsdiff");
    assert.equal(bsdiff.decoded.version, 1, "bsdiff (the default) writes tardf1");
    assert.ok(bsdiff.decoded.ops.addData > 0 && bsdiff.decoded.ops.zstdDict === 0);
    const zstd = await make("zstd", "--binary-diff", "zstd");
    assert.equal(zstd.decoded.ops.zstdDict, 2, "both files as ZstdDict");
    assert.equal(zstd.decoded.ops.addData, 0);
    const auto = await make("auto", "--binary-diff", "auto");
    assert.ok(
      auto.size <= Math.min(bsdiff.size, zstd.size) * 1.02 + 100,
      `auto ${auto.size}, ${bsdiff.size}, ${zstd.size}`,
    );
    // The 2 MiB binary is over a 2 MiB cap (limits are exclusive), the text file under it.
    const capped = await make("capped", "--binary-diff", "zstd", "--max-zstd-diff-size", "2");
    assert.equal(capped.decoded.ops.zstdDict, 1, "the binary went out as Data");
    const autoCapped = await make("auto-capped", "--binary-diff", "auto", "--max-zstd-diff-size", "2");
    assert.ok(autoCapped.decoded.ops.addData > 0, "auto bsdiffs what zstd may not");
    // Under a 2 MiB bsdiff cap the binary goes out whole; the text file is still diffed (Seek and Copy).
    const noBsdiff = await make("no-bsdiff", "--max-bsdiff-size", "2");
    assert.ok(noBsdiff.size > 2_000_000 && bsdiff.size < 200_000, `${noBsdiff.size} vs ${bsdiff.size}`);
    assert.ok(noBsdiff.decoded.ops.copy > 0 && noBsdiff.decoded.ops.addData === 0);
    // A 1 MiB window: the frames say window log 20. The 2 MiB binary's old bytes lie 2 MiB back,
    // out of reach: its frame would not be smaller than the file, so it goes out whole.
    await create(
      repo,
      "repo:old",
      "repo:new",
      `oci:${tmp.path}/window`,
      "--binary-diff",
      "zstd",
      "--zstd-diff-window",
      "1",
    );
    const windowed = await decodedOf(repo, `oci:${tmp.path}/window`);
    assert.equal(windowed.decoded.ops.zstdDict, 1);
    assert.deepEqual(windowed.decoded.windowLogs, [20]);
  },
});

Deno.test("create-delta: bad --binary-diff, --zstd-diff-level, --zstd-diff-window and size values are usage errors", async () => {
  await using tmp = await tempDir();
  const repo = `${tmp.path}/repo`;
  for (
    const [args, message] of [
      [["--binary-diff", "xdelta"], /--binary-diff must be bsdiff, zstd or auto, got "xdelta"/],
      [["--zstd-diff-level", "0"], /--zstd-diff-level must be an integer from 1 to 19, got "0"/],
      [["--zstd-diff-window", "3"], /--zstd-diff-window must be a power of two \(MiB\), got 3/],
      [["--zstd-diff-window", "1024"], /--zstd-diff-window must be a whole number of MiB from 0 to 512, got "1024"/],
      [["--max-zstd-diff-size", "-1"], /--max-zstd-diff-size must be a whole number of MiB/],
      [["--max-bsdiff-size", "1.5"], /--max-bsdiff-size must be a whole number of MiB/],
    ] as const
  ) {
    const r = await deltaship(repo, "create-delta", ...args, "repo:a", "repo:b", `oci:${tmp.path}/out`);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split("\n").length, 1);
  }
});
