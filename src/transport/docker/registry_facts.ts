/**
 * What is remembered of a registry between runs: today one fact, that it has
 * no referrers API. Without it every pull that looks for deltas on such a
 * registry (distribution 2.8, most mirrors) pays two small requests, the API's
 * 404 and the fallback tag's; with it, one (the fallback tag), which is the
 * least any discovery can cost. The fact is re-checked after a day, and
 * dropped as soon as the registry shows the API (an `OCI-Subject` answer to a
 * push), so a registry that gains the API is found again.
 *
 * Kept as one small file per registry under the user's cache directory
 * (`$DELTASHIP_CACHE_DIR`, else `$XDG_CACHE_HOME/deltaship`, else
 * `~/.cache/deltaship`), never in the repository: it is a hint about a server,
 * not content. Any failure to read or write it is ignored: a missing hint
 * costs one request, never a wrong result, since the fallback tag is read
 * whenever the API is skipped.
 *
 * @module
 */
import type { Env } from "./credentials.ts";

/** How long "no referrers API" is believed before the API is asked again. */
export const REFERRERS_RECHECK_MS = 24 * 60 * 60 * 1000;

/** The remembered facts about registries, in one cache directory. */
export class RegistryFacts {
  /** The facts kept in the cache directory `env` names, or none when it names none. */
  static fromEnv(env: Env, now: () => number = Date.now): RegistryFacts | undefined {
    const dir = env.DELTASHIP_CACHE_DIR ||
      (env.XDG_CACHE_HOME ? `${env.XDG_CACHE_HOME}/deltaship` : env.HOME ? `${env.HOME}/.cache/deltaship` : "");
    return dir ? new RegistryFacts(dir, now) : undefined;
  }

  /** Facts kept in `dir`, timed by `now` (milliseconds, as `Date.now`). */
  constructor(readonly dir: string, private readonly now: () => number = Date.now) {}

  /** True when `registry` (host[:port]) was found without a referrers API less than a day ago. */
  async lacksReferrersApi(registry: string): Promise<boolean> {
    try {
      const fact = JSON.parse(await Deno.readTextFile(this.#path(registry)));
      const checked = typeof fact?.noReferrersApiSince === "number" ? fact.noReferrersApiSince : NaN;
      const age = this.now() - checked;
      return age >= 0 && age < REFERRERS_RECHECK_MS;
    } catch {
      return false;
    }
  }

  /** Remembers that `registry` answered the referrers API with "no such endpoint". */
  async recordNoReferrersApi(registry: string): Promise<void> {
    const path = this.#path(registry);
    const temp = `${path}.${Deno.pid}-${crypto.randomUUID()}`;
    try {
      await Deno.mkdir(`${this.dir}/registries`, { recursive: true });
      await Deno.writeTextFile(temp, JSON.stringify({ noReferrersApiSince: this.now() }) + "\n");
      await Deno.rename(temp, path);
    } catch {
      await Deno.remove(temp).catch(() => {});
    }
  }

  /** Forgets what was remembered of `registry` (it showed the referrers API). */
  async forget(registry: string): Promise<void> {
    await Deno.remove(this.#path(registry)).catch(() => {});
  }

  #path(registry: string): string {
    return `${this.dir}/registries/${encodeURIComponent(registry.toLowerCase())}.json`;
  }
}
