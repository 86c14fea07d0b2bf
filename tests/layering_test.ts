/**
 * The architecture, checked: the folders of src/ import one way only, in the
 * order docs/design.md declares, and no module (or folder) is part of an import
 * cycle. Fails naming the offending import.
 */
import assert from "node:assert/strict";

/** The layers from the bottom; a module may import only from its own layer or below. */
export const LAYERS: string[][] = [
  ["util", "errors.ts", "version.ts"],
  ["compression"],
  ["tar"],
  ["oci"],
  ["tardiff", "composefs", "chunked"],
  ["transport", "repo"],
  ["delta"],
  ["ops"],
  ["cli"],
];

const SRC = new URL("../src/", import.meta.url).pathname;

/** The folder (or top-level file) a path under src/ belongs to. */
function unit(rel: string): string {
  const slash = rel.indexOf("/");
  return slash < 0 ? rel : rel.slice(0, slash);
}

function rank(u: string): number {
  const i = LAYERS.findIndex((layer) => layer.includes(u));
  if (i < 0) throw new Error(`src/${u} is in no declared layer: add it to LAYERS (and docs/design.md)`);
  return i;
}

/** Every module of src/ with the modules of src/ it imports (statically or dynamically, types included). */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  const walk = (dir: string) => {
    for (const e of Deno.readDirSync(`${SRC}${dir}`)) {
      const rel = dir ? `${dir}/${e.name}` : e.name;
      if (e.isDirectory) walk(rel);
      else if (rel.endsWith(".ts") && !rel.endsWith("_test.ts")) graph.set(rel, imports(rel));
    }
  };
  walk("");
  return graph;
}

function imports(rel: string): string[] {
  const text = Deno.readTextFileSync(`${SRC}${rel}`);
  const out: string[] = [];
  const re = /(?:import|export)\s[^;]*?from\s+"([^"]+)"|import\(\s*"([^"]+)"\s*\)|new URL\(\s*"([^"]+\.ts)"/g;
  for (const m of text.matchAll(re)) {
    const spec = m[1] ?? m[2] ?? m[3];
    if (!spec.startsWith(".")) continue;
    const target = new URL(spec, `file://${SRC}${rel}`).pathname;
    if (!target.startsWith(SRC)) continue;
    out.push(target.slice(SRC.length));
  }
  return out;
}

/** The strongly connected components of more than one node (or with a self-loop). */
function cycles(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const strong = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        strong(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(comp.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) strong(v);
  return out;
}

Deno.test("layering: every import goes to the same layer or one below", () => {
  const wrong: string[] = [];
  for (const [from, targets] of importGraph()) {
    for (const to of targets) {
      if (rank(unit(to)) > rank(unit(from))) {
        wrong.push(`src/${from} imports src/${to} (${unit(from)} is below ${unit(to)})`);
      }
    }
  }
  assert.deepEqual(wrong, []);
});

Deno.test("layering: no import cycle between modules or between folders", () => {
  const graph = importGraph();
  assert.deepEqual(cycles(graph).map((c) => c.join(" <-> ")), [], "modules in a cycle");
  const folders = new Map<string, string[]>();
  for (const [from, targets] of graph) {
    const f = unit(from);
    const list = folders.get(f) ?? [];
    for (const t of targets) if (unit(t) !== f && !list.includes(unit(t))) list.push(unit(t));
    folders.set(f, list);
  }
  assert.deepEqual(cycles(folders).map((c) => c.join(" <-> ")), [], "folders in a cycle");
});

Deno.test("layering: no module is over 450 lines", () => {
  const long: string[] = [];
  for (const rel of importGraph().keys()) {
    const lines = Deno.readTextFileSync(`${SRC}${rel}`).split("\n").length;
    if (lines > 450) long.push(`src/${rel}: ${lines} lines`);
  }
  assert.deepEqual(long, []);
});
