/** What is remembered of registries between runs (src/transport/docker/registry_facts.ts). */
import assert from "node:assert/strict";
import { REFERRERS_RECHECK_MS, RegistryFacts } from "../src/transport/docker/registry_facts.ts";
import { tempDir } from "./helpers/cli.ts";

Deno.test("registry facts: the cache directory is DELTASHIP_CACHE_DIR, else XDG_CACHE_HOME, else ~/.cache", () => {
  const env = { DELTASHIP_CACHE_DIR: "/c", XDG_CACHE_HOME: "/x", HOME: "/h" };
  assert.equal(RegistryFacts.fromEnv(env)?.dir, "/c");
  assert.equal(RegistryFacts.fromEnv({ ...env, DELTASHIP_CACHE_DIR: "" })?.dir, "/x/deltaship");
  assert.equal(RegistryFacts.fromEnv({ HOME: "/h" })?.dir, "/h/.cache/deltaship");
  assert.equal(RegistryFacts.fromEnv({}), undefined);
});

Deno.test("registry facts: 'no referrers API' is believed for a day, per registry, until forgotten", async () => {
  await using tmp = await tempDir();
  let now = 1_000_000;
  const facts = new RegistryFacts(tmp.path, () => now);
  assert.equal(await facts.lacksReferrersApi("Registry.example:5000"), false);
  await facts.recordNoReferrersApi("Registry.example:5000");
  assert.equal(await facts.lacksReferrersApi("registry.example:5000"), true, "host names are case-insensitive");
  assert.equal(await facts.lacksReferrersApi("registry.example:5001"), false, "another port is another registry");
  now += REFERRERS_RECHECK_MS - 1;
  assert.equal(await facts.lacksReferrersApi("registry.example:5000"), true);
  now += 1;
  assert.equal(await facts.lacksReferrersApi("registry.example:5000"), false, "re-checked after a day");
  await facts.recordNoReferrersApi("registry.example:5000");
  await facts.forget("registry.example:5000");
  assert.equal(await facts.lacksReferrersApi("registry.example:5000"), false);
  assert.deepEqual([...Deno.readDirSync(`${tmp.path}/registries`)], [], "no temporary file left");
});

Deno.test("registry facts: an unreadable or unwritable cache is no fact, and no error", async () => {
  await using tmp = await tempDir();
  await Deno.writeTextFile(`${tmp.path}/registries`, "not a directory");
  const facts = new RegistryFacts(tmp.path);
  await facts.recordNoReferrersApi("r.example");
  assert.equal(await facts.lacksReferrersApi("r.example"), false);
  await facts.forget("r.example");
  await Deno.remove(`${tmp.path}/registries`);
  await Deno.mkdir(`${tmp.path}/registries`);
  await Deno.writeTextFile(`${tmp.path}/registries/r.example.json`, "{garbage");
  assert.equal(await facts.lacksReferrersApi("r.example"), false);
});
