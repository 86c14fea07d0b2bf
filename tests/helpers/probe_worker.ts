/// <reference lib="deno.worker" />
/**
 * The worker side of `probe.ts`: runs one {@link ProbeTask} per message and
 * answers with a {@link ProbeResult}.
 */
import { DeltashipError } from "../../src/errors.ts";
import { ArchiveFiles } from "../../src/oci/archive.ts";
import { readRecord } from "../../src/repo/layer_record.ts";
import { BLOCK } from "../../src/tar/header.ts";
import { parseHeaderGroup } from "../../src/tar/header_group.ts";
import { caseSeed, type FuzzCase, fuzzTargets, Rng, splitChecked } from "./fuzz.ts";
import type { ProbeResult, ProbeTask } from "./probe.ts";

let targets: Record<string, FuzzCase> | undefined;

/** This worker's memory: its JavaScript heap and the buffers it holds outside it. */
function memory(): number {
  const m = Deno.memoryUsage();
  return m.heapUsed + m.external;
}

async function handle(task: ProbeTask): Promise<unknown> {
  switch (task.kind) {
    case "split": {
      const chunk = task.chunk ?? task.tar.length;
      const chunks: Uint8Array[] = [];
      for (let o = 0; o < task.tar.length; o += chunk) chunks.push(task.tar.subarray(o, o + chunk));
      return await splitChecked(chunks, task.tar.length);
    }
    case "index": {
      const files = await ArchiveFiles.open(task.path);
      return [...files.members.keys()];
    }
    case "record": {
      const globals = new Map<string, Uint8Array>();
      let items = 0;
      for await (const item of readRecord(task.path)) {
        items++;
        if (item.type === "header" && item.bytes.length >= BLOCK) parseHeaderGroup(item.bytes, globals);
      }
      return items;
    }
    case "fuzz-setup":
      targets = await fuzzTargets(task.dir);
      return Object.keys(targets);
    case "fuzz": {
      const target = targets?.[task.target];
      if (!target) throw new Error(`fuzz target ${task.target} is not set up`);
      await target(new Rng(caseSeed(task.seed, task.target, task.index)));
      return null;
    }
  }
}

self.onmessage = async (e: MessageEvent<ProbeTask>) => {
  let result: ProbeResult;
  try {
    result = { ok: true, value: await handle(e.data), memory: memory() };
  } catch (err) {
    const error = err instanceof Error ? err : new Error(String(err));
    result = {
      ok: false,
      typed: err instanceof DeltashipError,
      name: error.name,
      message: error.message,
      stack: error.stack,
      memory: memory(),
    };
  }
  self.postMessage(result);
};
