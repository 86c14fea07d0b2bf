/**
 * `--verify-key KEY.pub` of the commands that apply deltas (pull, apply-delta):
 * the PEM public key read and imported before anything else is done.
 *
 * @module
 */
import { FileSystemError, SignatureError } from "../errors.ts";
import { importPublicKey } from "../delta/signature.ts";
import type { OptionSpec } from "./args.ts";

/** The option spec. */
export const VERIFY_KEY_OPTION = {
  name: "verify-key",
  type: "string",
  arg: "KEY.pub",
  path: "file",
  help: "a delta must embed a cosign signature of its target that verifies with this ECDSA P-256 public key (PEM)",
} as const satisfies OptionSpec;

/** Reads and imports the `--verify-key` file, when given. */
export async function readVerifyKey(path: string | undefined): Promise<CryptoKey | undefined> {
  if (path === undefined) return undefined;
  let pem: string;
  try {
    pem = await Deno.readTextFile(path);
  } catch (e) {
    const code = (e as { code?: string }).code ?? "EIO";
    const why = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : code;
    throw new FileSystemError(`cannot read the --verify-key file ${JSON.stringify(path)}: ${why}`, path, code, {
      cause: e,
    });
  }
  const key = await importPublicKey(pem, `--verify-key ${JSON.stringify(path)}`).catch((e) => {
    throw e instanceof SignatureError ? e : new SignatureError(`--verify-key ${JSON.stringify(path)}: ${e}`);
  });
  return key;
}
