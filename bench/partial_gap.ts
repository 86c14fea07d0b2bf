/**
 * Measures the range-merging gap of partial pulls (DELTASHIP_RANGE_GAP): an
 * image of many small files, 5% of them changed at random, pushed as
 * zstd:chunked to a local docker-registry behind a proxy that adds a round
 * trip's delay to every request; the new version is pulled after the old one
 * with each gap (and whole, `--partial never`), and the bytes, requests and
 * time are printed.
 *
 *   deno run --allow-all bench/partial_gap.ts [FILES] [FILE_BYTES] [DELAY_MS] [RANGES_PER_REQUEST]
 *
 * @module
 */
import { runCli, tempDir } from "../tests/helpers/cli.ts";
import { startProxy } from "../tests/helpers/fault_proxy.ts";
import { startRegistry } from "../tests/helpers/registry.ts";
import { blobTraffic, pushTwoVersions } from "../tests/helpers/partial.ts";

const files = Number(Deno.args[0] ?? 2000);
const size = Number(Deno.args[1] ?? 8192);
const delayMs = Number(Deno.args[2] ?? 50);
const perRequest = Deno.args[3] ?? "64";
let seed = 7;
const random = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32;
const changed = [...new Set(Array.from({ length: Math.round(files / 20) }, () => Math.floor(random() * files)))];

await using tmp = await tempDir();
await using reg = await startRegistry();
await pushTwoVersions(tmp.path, `${tmp.path}/publisher`, reg.host, { files, size, changed });
await using proxy = startProxy(reg.url, async (_req, { forward }) => {
  await new Promise((r) => setTimeout(r, delayMs));
  return await forward();
});
console.log(
  `${files} files of ${size} bytes, ${changed.length} changed, ${delayMs} ms a request, ${perRequest} ranges a request`,
);
console.log("| gap | blob bytes | blob requests | pull s |\n|---|---|---|---|");
for (const gap of ["0", "1KiB", "4KiB", "16KiB", "64KiB", "never"]) {
  const repo = `${tmp.path}/host-${gap}`;
  await runCli(["--repo", repo, "-q", "pull", `docker://${proxy.host}/partial/app:v1`]);
  proxy.requests.length = 0;
  const t = performance.now();
  const never = gap === "never";
  const args = ["--repo", repo, "-q", "pull", ...(never ? ["--partial", "never"] : [])];
  const r = await runCli(
    [...args, `docker://${proxy.host}/partial/app:v2`],
    never ? {} : {
      DELTASHIP_RANGE_GAP: gap,
      DELTASHIP_RANGES_PER_REQUEST: perRequest,
    },
  );
  const s = (performance.now() - t) / 1000;
  if (r.code !== 0) throw new Error(r.stderr);
  const b = blobTraffic(proxy.requests);
  console.log(`| ${gap} | ${b.bytes} | ${b.requests} | ${s.toFixed(2)} |`);
}
