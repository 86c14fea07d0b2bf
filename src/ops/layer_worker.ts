/**
 * Worker entry point: serves the layer tasks (see layer_tasks.ts) that a pool
 * posts, against the repository its messages name. Listed in the compile
 * task's `--include`, since nothing imports it statically.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { serveTasks } from "../util/worker_pool.ts";
import { type LayerTasks, workerTaskKinds } from "./layer_tasks.ts";

serveTasks<LayerTasks>(self, workerTaskKinds());
