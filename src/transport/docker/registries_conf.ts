/**
 * registries.conf(5), as containers/image's pkg/sysregistriesv2
 * (system_registries_v2.go; commit in docs/design.md, "registries.conf") reads
 * it: which files, how they merge, which `[[registry]]` table an image
 * name picks, and where a pull of it goes (mirrors first, then the primary
 * location, the name rewritten from `prefix` to `location`).
 *
 * Files: `--registries-conf FILE`, else `$CONTAINERS_REGISTRIES_CONF`, else
 * `~/.config/containers/registries.conf` when it exists (then only the user's
 * drop-in directory is read), else `/etc/containers/registries.conf`; then the
 * drop-ins `*.conf` of `/etc/containers/registries.conf.d` and
 * `~/.config/containers/registries.conf.d`, in name order, a drop-in's table
 * replacing a same-prefix one before it. System paths are taken under
 * `$DELTASHIP_SYSTEM_ROOT` (host_config.ts).
 *
 * Read: `prefix`, `location`, `insecure`, `blocked`, `mirror-by-digest-only`,
 * `[[registry.mirror]]` with `location`, `insecure`, `pull-from-mirror`, and
 * the version-1 `[registries.insecure]` / `[registries.block]` lists. Other
 * settings (search registries, short-name aliases, credential helpers) are
 * about what deltaship does not do, and are left alone.
 *
 * @module
 */
import { parse, TomlError } from "smol-toml";
import { FormatError, InvalidArgumentError } from "../../errors.ts";
import { type Env, homeDir, readConfigText, systemPath } from "./host_config.ts";
import { type DockerReference, formatDockerReference, parseDockerReference } from "./reference.ts";

/** Where an image can be pulled from: a registry's primary location or one of its mirrors. */
export interface Endpoint {
  /** `host[:port][/namespace...]`, what the prefix is rewritten to ("" for a wildcard prefix: no rewrite). */
  location: string;
  /** TLS without certificate checks, and plain HTTP where the server speaks only that. */
  insecure: boolean;
  /** For mirrors: which pulls may use it. */
  pullFromMirror?: "all" | "digest-only" | "tag-only";
}

/** One `[[registry]]` table. */
export interface RegistryEntry extends Endpoint {
  /** Image names starting with it pick this table (`host[/ns...]`, or `*.domain`). */
  prefix: string;
  blocked: boolean;
  mirrorByDigestOnly: boolean;
  mirrors: Endpoint[];
  /** The file that defined it, for messages. */
  file: string;
}

/** The merged configuration, and where it came from. */
export interface RegistriesConf {
  registries: RegistryEntry[];
  /** The files read, for messages. */
  files: string[];
}

/** One place a pull tries: the endpoint, and the image's reference there. */
export interface PullSource {
  endpoint: Endpoint;
  reference: DockerReference;
  /** One of the table's mirrors (not its primary location). */
  mirror: boolean;
}

/** The registries.conf a command reads: `explicit` (`--registries-conf`), else the environment's, else the default. */
export async function loadRegistriesConf(env: Env, explicit?: string): Promise<RegistriesConf> {
  const home = homeDir(env);
  const userFile = home ? `${home}/.config/containers/registries.conf` : undefined;
  const userDir = home ? `${home}/.config/containers/registries.conf.d` : undefined;
  const chosen = explicit || env.CONTAINERS_REGISTRIES_CONF;
  let main: string;
  let dirs: string[];
  let mainText: string | undefined;
  if (chosen) {
    main = chosen;
    mainText = await readConfigText(main, "registries configuration");
    if (mainText === undefined) {
      const via = explicit ? "--registries-conf" : "$CONTAINERS_REGISTRIES_CONF";
      throw new InvalidArgumentError(`registries configuration ${main} (from ${via}) does not exist`);
    }
    dirs = [systemPath(env, "/etc/containers/registries.conf.d"), ...(userDir ? [userDir] : [])];
  } else if (userFile && (mainText = await readConfigText(userFile, "registries configuration")) !== undefined) {
    main = userFile;
    dirs = userDir ? [userDir] : [];
  } else {
    main = systemPath(env, "/etc/containers/registries.conf");
    mainText = await readConfigText(main, "registries configuration");
    dirs = [systemPath(env, "/etc/containers/registries.conf.d"), ...(userDir ? [userDir] : [])];
  }
  const files: string[] = [];
  let byPrefix = new Map<string, RegistryEntry>();
  if (mainText !== undefined) {
    files.push(main);
    for (const r of parseRegistriesConf(mainText, main, false)) byPrefix.set(r.prefix, r);
  }
  for (const dir of dirs) {
    for (const path of await dropIns(dir)) {
      const text = await readConfigText(path, "registries configuration");
      if (text === undefined) continue; // removed since the listing
      files.push(path);
      const merged = new Map(byPrefix);
      for (const r of parseRegistriesConf(text, path, true)) merged.set(r.prefix, r);
      byPrefix = merged;
    }
  }
  const registries = [...byPrefix.keys()].sort().map((p) => byPrefix.get(p)!);
  return { registries, files };
}

/** The `*.conf` files of a drop-in directory, in name order (none when it does not exist). */
async function dropIns(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (!e.isDirectory && e.name.endsWith(".conf")) names.push(e.name);
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return [];
    throw e;
  }
  return names.sort().map((n) => `${dir}/${n}`);
}

/**
 * The `[[registry]]` tables of one file, checked as containers/image checks
 * them (`postProcessRegistries`); the first of two tables with the same prefix
 * wins. `dropIn` files must be in the version-2 format.
 */
export function parseRegistriesConf(text: string, file: string, dropIn: boolean): RegistryEntry[] {
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (e) {
    const where = e instanceof TomlError ? ` (line ${e.line}, column ${e.column})` : "";
    const what = e instanceof Error ? e.message.split("\n")[0] : String(e);
    throw new FormatError(`registries configuration ${file}: not valid TOML${where}: ${what}`);
  }
  const bad = (why: string) => new FormatError(`registries configuration ${file}: ${why}`);
  const v1 = doc.registries;
  const tables = doc.registry;
  let raw: Record<string, unknown>[];
  if (v1 !== undefined) {
    if (dropIn) throw bad("a drop-in file must be in the version 2 format ([[registry]] tables)");
    if (tables !== undefined) throw bad("mixes the version 1 ([registries]) and version 2 ([[registry]]) formats");
    raw = fromVersion1(v1, bad);
  } else if (tables === undefined) {
    raw = [];
  } else if (Array.isArray(tables) && tables.every(isTable)) {
    raw = tables;
  } else {
    throw bad("registry must be an array of tables ([[registry]])");
  }
  const entries: RegistryEntry[] = [];
  for (const t of raw) {
    const location = locationOf(t.location, "location", bad);
    let prefix = t.prefix === undefined ? "" : locationOf(t.prefix, "prefix", bad);
    if (prefix === "") {
      if (location === "") throw bad("a [[registry]] table sets neither location nor prefix");
      prefix = location;
    } else if (location === "" && !prefix.startsWith("*.")) {
      throw bad(`registry ${JSON.stringify(prefix)}: location is unset and prefix is not of the form *.example.com`);
    }
    if (prefix.startsWith("*.") && /[/@:]/.test(prefix)) {
      throw bad(`wildcard prefix ${JSON.stringify(prefix)} must be of the form *.example.com`);
    }
    if (t["pull-from-mirror"] !== undefined) {
      throw bad(`registry ${JSON.stringify(prefix)}: pull-from-mirror is for mirrors only`);
    }
    const mirrorByDigestOnly = boolOf(t["mirror-by-digest-only"], "mirror-by-digest-only", bad);
    const mirrorTables = t.mirror ?? [];
    if (!Array.isArray(mirrorTables) || !mirrorTables.every(isTable)) {
      throw bad(`registry ${JSON.stringify(prefix)}: mirror must be an array of tables ([[registry.mirror]])`);
    }
    const mirrors = mirrorTables.map((m): Endpoint => {
      const mirrorLocation = locationOf(m.location, "mirror location", bad);
      if (mirrorLocation === "") throw bad(`registry ${JSON.stringify(prefix)}: a mirror has no location`);
      const pull = m["pull-from-mirror"];
      if (pull !== undefined && pull !== "all" && pull !== "digest-only" && pull !== "tag-only") {
        throw bad(`mirror ${JSON.stringify(mirrorLocation)}: pull-from-mirror must be all, digest-only or tag-only`);
      }
      if (pull !== undefined && mirrorByDigestOnly) {
        throw bad(`registry ${JSON.stringify(prefix)} sets mirror-by-digest-only and a mirror sets pull-from-mirror`);
      }
      return {
        location: mirrorLocation,
        insecure: boolOf(m.insecure, "insecure", bad),
        ...(pull !== undefined ? { pullFromMirror: pull } : {}),
      };
    });
    entries.push({
      prefix,
      location,
      insecure: boolOf(t.insecure, "insecure", bad),
      blocked: boolOf(t.blocked, "blocked", bad),
      mirrorByDigestOnly,
      mirrors,
      file,
    });
  }
  // Tables for one location must agree on insecure and blocked.
  for (const a of entries) {
    for (const b of entries) {
      if ((a.location || a.prefix) !== (b.location || b.prefix)) continue;
      for (const key of ["insecure", "blocked"] as const) {
        if (a[key] !== b[key]) {
          throw bad(`registry ${JSON.stringify(a.location || a.prefix)} is defined twice with different ${key}`);
        }
      }
    }
  }
  const seen = new Set<string>();
  return entries.filter((r) => !seen.has(r.prefix) && seen.add(r.prefix));
}

/** The version-1 lists as tables: `[registries.insecure] registries = [...]`, `[registries.block]`. */
function fromVersion1(v1: unknown, bad: (why: string) => Error): Record<string, unknown>[] {
  if (!isTable(v1)) throw bad("registries must be a table");
  const tables = new Map<string, Record<string, unknown>>();
  for (const [list, key] of [["block", "blocked"], ["insecure", "insecure"]] as const) {
    const section = v1[list];
    if (section === undefined) continue;
    const names = isTable(section) ? section.registries ?? [] : undefined;
    if (!Array.isArray(names) || !names.every((n) => typeof n === "string")) {
      throw bad(`registries.${list}.registries must be a list of strings`);
    }
    for (const name of names) {
      const t = tables.get(name) ?? { location: name };
      t[key] = true;
      tables.set(name, t);
    }
  }
  return [...tables.values()];
}

/** A location or prefix: trailing slashes dropped; a URL scheme refused. */
function locationOf(v: unknown, what: string, bad: (why: string) => Error): string {
  if (v === undefined) return "";
  if (typeof v !== "string") throw bad(`${what} must be a string`);
  const trimmed = v.replace(/\/+$/, "");
  if (/^https?:\/\//.test(trimmed)) throw bad(`${what} ${JSON.stringify(v)}: URL schemes are not allowed`);
  return trimmed;
}

function boolOf(v: unknown, what: string, bad: (why: string) => Error): boolean {
  if (v === undefined) return false;
  if (typeof v !== "boolean") throw bad(`${what} must be true or false`);
  return v;
}

function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/**
 * The length of `prefix` when `ref` (`host/path[:tag][@digest]`, or a prefix
 * of one) starts with it as a whole component, else -1; `*.domain` matches
 * any subdomain of the first component (containers/image's `refMatchingPrefix`).
 */
export function matchPrefix(ref: string, prefix: string): number {
  if (prefix.startsWith("*.")) {
    const suffix = prefix.slice(1);
    const at = ref.indexOf(suffix);
    if (at < 0 || ref.slice(0, at).includes("/")) return -1;
    const end = at + suffix.length;
    return end === ref.length || ":/@".includes(ref[end]) ? end : -1;
  }
  if (ref === prefix) return prefix.length;
  return ref.startsWith(prefix) && ":/@".includes(ref[prefix.length] ?? "x") ? prefix.length : -1;
}

/** The table for the image `name` (`host/path`): the one with the longest matching prefix. */
export function findRegistry(conf: RegistriesConf, name: string): RegistryEntry | undefined {
  let best: RegistryEntry | undefined;
  for (const r of conf.registries) {
    if (matchPrefix(name, r.prefix) >= 0 && r.prefix.length > (best?.prefix.length ?? 0)) best = r;
  }
  return best;
}

/**
 * Where a pull of `ref` goes, in order: the table's mirrors that take this kind
 * of reference (by digest or by tag), then its primary location; without a
 * table, the reference as it is.
 */
export function pullSources(conf: RegistriesConf, ref: DockerReference): PullSource[] {
  const entry = findRegistry(conf, `${ref.domain}/${ref.repository}`);
  if (!entry) return [{ endpoint: { location: ref.domain, insecure: false }, reference: ref, mirror: false }];
  const digested = ref.digest !== undefined;
  const mirrors = entry.mirrors.filter((m) =>
    entry.mirrorByDigestOnly
      ? digested
      : !(m.pullFromMirror === "digest-only" && !digested) && !(m.pullFromMirror === "tag-only" && digested)
  );
  return [
    ...mirrors.map((m) => ({ endpoint: m, reference: rewrite(ref, entry, m), mirror: true })),
    { endpoint: entry, reference: rewrite(ref, entry, entry), mirror: false },
  ];
}

/** `ref` with the table's prefix replaced by `endpoint`'s location (as it is, for an empty location). */
function rewrite(ref: DockerReference, entry: RegistryEntry, endpoint: Endpoint): DockerReference {
  if (endpoint.location === "") return ref;
  const text = formatDockerReference(ref);
  const rewritten = endpoint.location + text.slice(matchPrefix(text, entry.prefix));
  const host = rewritten.split("/")[0];
  const parsed = /[.:]/.test(host) || host === "localhost" ? tryParse(rewritten) : undefined;
  if (!parsed) {
    throw new FormatError(
      `registries configuration ${entry.file}: ${JSON.stringify(text)} rewritten for location ` +
        `${JSON.stringify(endpoint.location)} is ${JSON.stringify(rewritten)}, not a reference with a registry host`,
    );
  }
  return parsed;
}

function tryParse(text: string): DockerReference | undefined {
  try {
    return parseDockerReference(text);
  } catch {
    return undefined;
  }
}
