/**
 * Test helper: the reference oci-delta cases in testdata/oci-delta (made with the
 * Go tar-diff) and checks of what a correct client reaches with them.
 */
import assert from "node:assert/strict";
import { sha256 } from "../../src/util/digest.ts";
import { deltaship } from "./cli.ts";

/** Directory of the reference cases (each: old/, new/, delta/, expected.json). */
export const FIXTURES = new URL("../../testdata/oci-delta/", import.meta.url).pathname;
/** The reference cases. */
export const CASES = ["basic", "edits", "whiteouts", "fallback"];
/** Directory of the tar-diff version 2 cases in testdata/oci-delta-v2 (ZstdDict ops made with `zstd --patch-from`). */
export const FIXTURES_V2 = new URL("../../testdata/oci-delta-v2/", import.meta.url).pathname;
/** The version 2 cases. */
export const CASES_V2 = ["basic", "edits", "whiteouts", "midfile"];

/** A case's expected.json. */
export interface Expected {
  new_manifest: string;
  new_config: string;
  diff_ids: string[];
  delta_manifest: string;
}

/** Reads a case's expected digests. */
export async function expected(name: string, dir: string = FIXTURES): Promise<Expected> {
  return JSON.parse(await Deno.readTextFile(`${dir}${name}/expected.json`));
}

/** Every layer of the image rebuilds to its diff_id, and the repository checks out. */
export async function checkLayers(repo: string, diffIds: string[]): Promise<void> {
  for (const diffId of diffIds) {
    const layer = await deltaship(repo, "layer", diffId);
    assert.equal(layer.code, 0, layer.stderr);
    assert.equal(sha256(layer.stdoutBytes), diffId);
  }
  const fsck = await deltaship(repo, "fsck");
  assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
}
