/**
 * Numeric settings (`util/settings.ts`, issue 20 item 10): every option and
 * environment variable that takes a number has the range the reference's settings
 * table documents, is refused outside it with one line naming it and the range
 * (exit status 2) before anything is done, and is accepted at both ends. Every
 * `DELTASHIP_*` variable the code reads is in that table.
 */
import assert from "node:assert/strict";
import { InvalidArgumentError } from "../src/errors.ts";
import { describeRange, parseSetting } from "../src/util/settings.ts";
import { deltashipProcess, runCli, tempDir } from "./helpers/cli.ts";

const root = new URL("../", import.meta.url).pathname;

Deno.test("parseSetting: decimal digits in range only; sizes with units; one line naming the setting and range", () => {
  assert.equal(parseSetting("--n", "7", { min: 1, max: 7 }), 7);
  assert.equal(parseSetting("--n", "0", { min: 0, max: 7 }), 0);
  assert.equal(parseSetting("S", "1.5GiB", { min: 1, max: 2 ** 40, unit: "bytes" }), 1.5 * 2 ** 30);
  assert.equal(parseSetting("S", "64 MiB", { min: 1, max: 2 ** 40, unit: "bytes" }), 64 * 2 ** 20);
  for (const bad of ["8", "-1", "+5", " 5", "5 ", "1e3", "0x10", "5.0", "", "1_000", "٣"]) {
    assert.throws(
      () => parseSetting("--n", bad, { min: 1, max: 7 }),
      (e) =>
        e instanceof InvalidArgumentError && e.exitCode === 2 &&
        e.message === `--n must be an integer from 1 to 7, got ${JSON.stringify(bad)}`,
      bad,
    );
  }
  assert.equal(describeRange({ min: 0, max: 19 }), "an integer from 0 to 19");
  assert.equal(
    describeRange({ min: 1024, max: 256 * 2 ** 20, unit: "bytes" }),
    "a size in bytes or with KiB, MiB, GiB or TiB, from 1 KiB to 256 MiB",
  );
  assert.equal(describeRange({ min: 1, max: 1500, unit: "bytes" }).endsWith("from 1 byte to 1500 bytes"), true);
  assert.equal(describeRange({ min: 1, max: 60_000, unit: "ms" }), "a whole number of milliseconds from 1 to 60000");
  assert.throws(() => parseSetting("S", "2TiB", { min: 1, max: 2 ** 40, unit: "bytes" }), /S must be a size/);
  assert.throws(() => parseSetting("S", "1e15", { min: 1, max: 2 ** 40, unit: "bytes" }), /got "1e15"/);
});

/** A registry stand-in that answers 404 to everything: a pull or push fails at once, with no retries. */
function notFoundServer(): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => new Response("{}", { status: 404 }));
}

Deno.test("the issue's values: huge timeouts, deadline and chunk size are refused in one line, no runtime warning", async () => {
  await using tmp = await tempDir();
  await using server = notFoundServer();
  const host = `127.0.0.1:${server.addr.port}`;
  const cases: [Record<string, string>, string[], RegExp][] = [
    [
      { DELTASHIP_HTTP_TIMEOUT_MS: "3000000000" },
      ["pull", `docker://${host}/app:v1`],
      /^deltaship: DELTASHIP_HTTP_TIMEOUT_MS must be a whole number of milliseconds from 1 to 86400000, got "3000000000"$/,
    ],
    [
      { DELTASHIP_HTTP_DEADLINE_MS: "2147483648" },
      ["pull", `docker://${host}/app:v1`],
      /^deltaship: DELTASHIP_HTTP_DEADLINE_MS must be a whole number of milliseconds from 1 to 86400000, got "2147483648"$/,
    ],
    [
      { DELTASHIP_UPLOAD_CHUNK_SIZE: "1e15" },
      ["push", "app", `docker://${host}/app:v1`],
      /^deltaship: DELTASHIP_UPLOAD_CHUNK_SIZE must be a size in bytes or with KiB, MiB, GiB or TiB, from 1 KiB to 256 MiB, got "1e15"$/,
    ],
  ];
  for (const [env, args, message] of cases) {
    const r = await deltashipProcess(["--repo", `${tmp.path}/repo`, ...args], env);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr.trim(), message);
    assert.doesNotMatch(r.stderr, /TimeoutOverflowWarning|internal error/);
  }
});

/** One row of the settings table of docs/cli.md (generated from src/cli/reference.ts). */
interface Row {
  names: string[];
  range: string;
}

function settingsTable(): Row[] {
  const reference = Deno.readTextFileSync(`${root}docs/cli.md`);
  const section = reference.slice(reference.indexOf("\n## Settings\n"), reference.indexOf("\n## Environment\n"));
  const rows = section.split("\n").filter((l) => /^\| `/.test(l));
  assert.ok(rows.length >= 10, "docs/cli.md has a settings table");
  return rows.map((l) => {
    const [setting, range] = l.split(/(?<!\\)\|/).slice(1, 3).map((c) => c.trim());
    const names = [...setting.matchAll(/`(?:-\w, )?(--[a-z-]+|DELTASHIP_[A-Z_]+)[^`]*`/g)].map((m) => m[1]);
    return { names, range };
  });
}

const UNITS: Record<string, number> = { byte: 1, bytes: 1, KiB: 2 ** 10, MiB: 2 ** 20, GiB: 2 ** 30, TiB: 2 ** 40 };

/**
 * The ends of a documented numeric range, as values to write: `1 to 64`, `0 to 512 MiB` (MiB options, values
 * in MiB), `1 to 86400000 ms`; sizes in bytes when the low end has a unit (`1 KiB to 256 MiB`).
 */
function ends(range: string): [number, number] | undefined {
  const m = /^(\d+)(?: (bytes?|KiB|MiB|GiB|TiB))? to (\d+)(?: (KiB|MiB|GiB|TiB|ms))?/.exec(range);
  if (!m) return undefined;
  if (!m[2]) return [Number(m[1]), Number(m[3])];
  return [Number(m[1]) * UNITS[m[2]], Number(m[3]) * UNITS[m[4]]];
}

Deno.test("every numeric setting in the reference's table is refused outside its range and taken at both ends", async () => {
  await using tmp = await tempDir();
  await using server = notFoundServer();
  const host = `127.0.0.1:${server.addr.port}`;
  const repo = `${tmp.path}/repo`;
  const none = `oci:${tmp.path}/none`;
  // How each setting is reached; with a value in range these fail for another reason (nothing to pull), at once.
  const create =
    (option: string) => (v: string) => ["create-delta", "repo:a", "repo:b", `oci:${tmp.path}/d`, option, v];
  const option: Record<string, (v: string) => string[]> = {
    "--jobs": (v) => ["--jobs", v, "images"],
    "--max-downloads": (v) => ["pull", "--max-downloads", v, none],
    "--max-uploads": (v) => ["push", "app", `docker://${host}/app`, "--max-uploads", v],
    "--max-layer-size": (v) => ["pull", "--max-layer-size", v, none],
    "--memory-limit": (v) => ["pull", "--memory-limit", v, none],
    "--zstd-level": create("--zstd-level"),
    "--zstd-diff-level": create("--zstd-diff-level"),
    "--zstd-diff-window": create("--zstd-diff-window"),
    "--max-zstd-diff-size": create("--max-zstd-diff-size"),
    "--max-bsdiff-size": create("--max-bsdiff-size"),
  };
  const variable: Record<string, string[]> = {
    DELTASHIP_JOBS: ["images"],
    DELTASHIP_MAX_LAYER_SIZE: ["pull", none],
    DELTASHIP_MEMORY_LIMIT: ["pull", none],
    DELTASHIP_HTTP_TIMEOUT_MS: ["pull", `docker://${host}/app:v1`],
    DELTASHIP_HTTP_DEADLINE_MS: ["pull", `docker://${host}/app:v1`],
    DELTASHIP_RETRY_BASE_MS: ["pull", `docker://${host}/app:v1`],
    DELTASHIP_UPLOAD_CHUNK_SIZE: ["push", "app", `docker://${host}/app`],
    DELTASHIP_RANGE_GAP: ["pull", `docker://${host}/app:v1`],
    DELTASHIP_RANGES_PER_REQUEST: ["pull", `docker://${host}/app:v1`],
  };
  const check = async (name: string, args: string[], env: Record<string, string>, value: number, ok: boolean) => {
    const r = await runCli(["--repo", repo, ...args], env);
    const refusal = new RegExp(`^deltaship: ${name} must be .*, got "${value}"$`);
    if (ok) {
      assert.doesNotMatch(r.stderr, / must be /, `${name}=${value} is in range: ${r.stderr}`);
    } else {
      assert.equal(r.code, 2, `${name}=${value}: ${r.stderr}`);
      assert.match(r.stderr.trim(), refusal);
    }
  };
  let numeric = 0;
  for (const row of settingsTable()) {
    if (row.names.includes("--level")) {
      for (const [compression, max] of [["gzip", 9], ["zstd", 19], ["zstd:chunked", 19]] as const) {
        assert.ok(row.range.includes(`${compression} 1 to ${max}`), row.range);
        for (const [v, ok] of [[0, false], [1, true], [max, true], [max + 1, false]] as const) {
          const args = ["export", "app", `oci:${tmp.path}/out`, "--compression", compression, "--level", String(v)];
          await check(`--level for ${compression}`, args, {}, v, ok);
        }
      }
      numeric++;
      continue;
    }
    const range = ends(row.range);
    if (!range) continue; // not a number: a directory, a mode, a flag
    numeric++;
    const [min, max] = range;
    const values: [number, boolean][] = [[min, true], [max, true], [max + 1, false]];
    if (min > 0) values.push([min - 1, false]);
    for (const name of row.names) {
      for (const [v, ok] of values) {
        if (name.startsWith("--")) {
          assert.ok(option[name], `the test knows how to reach ${name}`);
          await check(name, option[name](String(v)), {}, v, ok);
        } else {
          assert.ok(variable[name], `the test knows how to reach ${name}`);
          await check(name, variable[name], { [name]: String(v) }, v, ok);
        }
      }
    }
  }
  assert.equal(numeric, 17, "numeric rows in the table");
});

Deno.test("every DELTASHIP_* variable the code reads is in the reference's settings table", () => {
  const documented = new Set(settingsTable().flatMap((r) => r.names));
  const read = new Set<string>();
  const walk = (dir: string) => {
    for (const e of Deno.readDirSync(dir)) {
      if (e.isDirectory) walk(`${dir}/${e.name}`);
      else if (e.name.endsWith(".ts")) {
        for (const m of Deno.readTextFileSync(`${dir}/${e.name}`).matchAll(/\bDELTASHIP_[A-Z][A-Z_]*[A-Z]\b/g)) {
          read.add(m[0]);
        }
      }
    }
  };
  walk(`${root}src`);
  assert.ok(read.size >= 10, [...read].join());
  assert.deepEqual([...read].filter((v) => !documented.has(v)).sort(), []);
});
