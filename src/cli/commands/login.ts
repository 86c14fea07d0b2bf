/**
 * `deltaship login REGISTRY` and `logout REGISTRY`: keep or drop a registry's
 * credentials in the auth file podman and skopeo use.
 *
 * @module
 */
import { UsageError } from "../../errors.ts";
import { concat } from "../../util/streams.ts";
import { primaryAuthFile } from "../../transport/docker/credentials.ts";
import { checkLogin, removeCredentials, storeCredentials } from "../../transport/docker/login.ts";
import { parseRegistryKey } from "../../transport/docker/reference.ts";
import { defineCommand } from "../command.ts";
import { REGISTRY_OPTIONS, registryOpenOptions } from "../transport_options.ts";

/** Longest password read from standard input. */
const MAX_PASSWORD = 64 * 1024;

const AUTH_FILE_TEXT = `
The credentials go to --authfile FILE, else $REGISTRY_AUTH_FILE, else
$XDG_RUNTIME_DIR/containers/auth.json, else /run/containers/UID/auth.json: the
file podman login and skopeo login write, in the same form (mode 0600, written
atomically). REGISTRY may name a namespace (quay.io/team) for credentials that
apply to it only.`;

export const loginCommand = defineCommand({
  name: "login",
  summary: "Check and keep credentials for a registry",
  usage: "REGISTRY",
  description: `
Checks the user name and password against REGISTRY (HOST[:PORT], or
HOST[:PORT]/NAMESPACE), then keeps them for pull, push, create-delta and
apply-delta. The password comes from --password-stdin (recommended) or
--password.
${AUTH_FILE_TEXT}`,
  examples: [
    "printf '%s\\n' \"$TOKEN\" | deltaship login -u ci --password-stdin registry.example.com",
  ],
  operands: ["word"],
  options: [
    { name: "username", short: "u", type: "string", arg: "USER", help: "user name" },
    {
      name: "password",
      short: "p",
      type: "string",
      arg: "PASS",
      help: "password (visible to other users: prefer --password-stdin)",
    },
    { name: "password-stdin", type: "boolean", help: "read the password from standard input" },
    ...REGISTRY_OPTIONS.filter((o) => o.name !== "creds"),
  ],
  args: { min: 1, max: 1 },
  async run(ctx, [registry], values) {
    const key = parseRegistryKey(registry);
    const username = values.username;
    if (username === undefined || username === "") throw new UsageError("login: pass --username USER");
    if (username.includes(":")) throw new UsageError("login: the user name cannot contain ':'");
    if (values.password !== undefined && values["password-stdin"]) {
      throw new UsageError("login: pass --password or --password-stdin, not both");
    }
    const password = values["password-stdin"] ? await readPassword(ctx.io.stdin) : values.password;
    if (password === undefined || password === "") {
      throw new UsageError("login: pass the password on standard input with --password-stdin (or --password)");
    }
    const options = registryOpenOptions(values, ctx.io.env);
    const credentials = { username, password, source: "the user name and password given" };
    await checkLogin(key, credentials, options);
    const { path } = primaryAuthFile(ctx.io.env, options.authfile);
    await storeCredentials(path, key.key, credentials);
    if (ctx.json) return void await ctx.printJson({ registry: key.key, authfile: path });
    await ctx.print(`Login Succeeded! (credentials for ${key.key} kept in ${path})`);
  },
});

export const logoutCommand = defineCommand({
  name: "logout",
  summary: "Remove the credentials kept for a registry",
  usage: "REGISTRY",
  description: `
Removes the entry for REGISTRY (as login named it) from the auth file login
writes.
${AUTH_FILE_TEXT}`,
  examples: [
    "deltaship logout registry.example.com",
  ],
  operands: ["word"],
  options: [REGISTRY_OPTIONS[1]],
  args: { min: 1, max: 1 },
  async run(ctx, [registry], values) {
    const key = parseRegistryKey(registry);
    const { path } = primaryAuthFile(ctx.io.env, values.authfile || undefined);
    await removeCredentials(path, key.key);
    if (ctx.json) return void await ctx.printJson({ registry: key.key, authfile: path });
    await ctx.print(`Removed login credentials for ${key.key} from ${path}`);
  },
});

/** The password on standard input: up to {@link MAX_PASSWORD} bytes, one trailing newline dropped (as podman). */
async function readPassword(stdin: ReadableStream<Uint8Array> | undefined): Promise<string> {
  if (!stdin) throw new UsageError("login: --password-stdin, but there is no standard input");
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const chunk of stdin) {
    n += chunk.length;
    if (n > MAX_PASSWORD) {
      throw new UsageError(`login: the password on standard input is longer than ${MAX_PASSWORD} bytes`);
    }
    parts.push(chunk);
  }
  const text = new TextDecoder().decode(concat(parts, n));
  return text.replace(/\n$/, "").replace(/\r$/, "");
}
