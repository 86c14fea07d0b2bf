/**
 * Worker entry point: runs {@link Task}s posted by a {@link TaskPool} and posts
 * back progress, results and errors.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { serializeError } from "../errors.ts";
import { Repository } from "../repo/repository.ts";
import type { SyncMode } from "../repo/durability.ts";
import { runTask, type Task } from "./tasks.ts";

/** A task as posted to the worker. */
export interface TaskMessage {
  id: number;
  repoRoot: string;
  tempDir: string;
  /** How the parent makes commits durable; the worker does the same. */
  sync: SyncMode;
  task: Task;
}

/** What the worker posts back. */
export type WorkerReply =
  | { id: number; type: "progress"; bytes: number }
  | { id: number; type: "done"; result: unknown }
  | { id: number; type: "error"; error: ReturnType<typeof serializeError> };

const repos = new Map<string, Repository>();

self.onmessage = async (e: MessageEvent<TaskMessage>) => {
  const { id, repoRoot, tempDir, sync, task } = e.data;
  try {
    const key = `${repoRoot}\0${tempDir}`;
    let repo = repos.get(key);
    if (!repo) {
      repo = await Repository.open(repoRoot, { tempDir, sync });
      repos.set(key, repo);
    }
    const result = await runTask(repo, task, (bytes) => self.postMessage({ id, type: "progress", bytes }));
    self.postMessage({ id, type: "done", result });
  } catch (err) {
    self.postMessage({ id, type: "error", error: serializeError(err) });
  }
};
