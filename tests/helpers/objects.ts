/**
 * Test helper: where the repository keeps file contents. Objects are named by
 * their fs-verity digest at `objects/XX/<62 hex>` (see docs/repository.md).
 */
import { fsverityHex } from "../../src/composefs/fsverity.ts";

const enc = new TextEncoder();

/** The fs-verity digest (hex) that names the object holding `content`. */
export function objectHex(content: string | Uint8Array): string {
  return fsverityHex(typeof content === "string" ? enc.encode(content) : content);
}

/** The path of the object holding `content` in the repository `repo`. */
export function objectPathOf(repo: string, content: string | Uint8Array): string {
  const hex = objectHex(content);
  return `${repo}/objects/${hex.slice(0, 2)}/${hex.slice(2)}`;
}

/** Every object file of a repository, as [its fs-verity hex, read from its path; the path], sorted. */
export function objectFiles(repo: string): [string, string][] {
  const out: [string, string][] = [];
  for (const fan of Deno.readDirSync(`${repo}/objects`)) {
    if (!/^[0-9a-f]{2}$/.test(fan.name)) continue;
    for (const e of Deno.readDirSync(`${repo}/objects/${fan.name}`)) {
      out.push([fan.name + e.name, `${repo}/objects/${fan.name}/${e.name}`]);
    }
  }
  return out.sort();
}
