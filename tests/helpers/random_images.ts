/**
 * Test helper: seeded random image pairs for delta round trips. The old image
 * has several layers (later ones edit, delete with `.wh.` whiteouts, hide
 * directories with opaque markers, add symlinks and hardlinks); the new image
 * shares some layers and changes others: edited files (small binary and text
 * edits), moved and renamed files, deleted ones, new files, links. The
 * generator also keeps its own model of the old image's merged filesystem, an
 * independent check of what a delta may read.
 */
import { buildTar, type TarSpec } from "./tar.ts";

/** A small seeded PRNG (mulberry32). */
export function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One path of a modelled filesystem. */
export type ModelNode =
  | { type: "file"; content: Uint8Array }
  | { type: "dir" }
  | { type: "symlink"; target: string };

/** A generated pair. */
export interface RandomPair {
  oldLayers: Uint8Array[];
  newLayers: Uint8Array[];
  /** The old image's merged filesystem, by path. */
  oldView: Map<string, ModelNode>;
}

const WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "lib", "bin", "share", "conf", "data"];
const EXTS = ["", ".txt", ".so.1", ".json", ".bin", ".js", ".xz"];

/** Random file content of one of a few kinds: text, structured binary, noise. */
function content(rnd: () => number, size: number): Uint8Array {
  const kind = Math.floor(rnd() * 3);
  const out = new Uint8Array(size);
  if (kind === 0) {
    const text = Array.from({ length: size }, () => WORDS[Math.floor(rnd() * WORDS.length)]).join(" ");
    out.set(new TextEncoder().encode(text).subarray(0, size));
  } else if (kind === 1) {
    for (let i = 0; i < size; i++) out[i] = i % 8 < 3 ? (i >> 3) & 0xff : Math.floor(rnd() * 16);
  } else {
    for (let i = 0; i < size; i++) out[i] = Math.floor(rnd() * 256);
  }
  return out;
}

/** A variant of `data`: patched bytes, an insertion, a deletion. */
function edited(rnd: () => number, data: Uint8Array): Uint8Array {
  const bytes = Array.from(data);
  const patches = 1 + Math.floor(rnd() * 8);
  for (let i = 0; i < patches && bytes.length; i++) bytes[Math.floor(rnd() * bytes.length)] = Math.floor(rnd() * 256);
  if (rnd() < 0.5) {
    const at = Math.floor(rnd() * (bytes.length + 1));
    bytes.splice(at, 0, ...content(rnd, Math.floor(rnd() * 200)));
  }
  if (rnd() < 0.5 && bytes.length > 10) bytes.splice(Math.floor(rnd() * bytes.length), Math.floor(rnd() * 100));
  return Uint8Array.from(bytes);
}

function pick<T>(rnd: () => number, items: T[]): T {
  return items[Math.floor(rnd() * items.length)];
}

function name(rnd: () => number): string {
  return `${pick(rnd, WORDS)}${Math.floor(rnd() * 50)}${pick(rnd, EXTS)}`;
}

/** Builds layers while keeping the merged view up to date. */
class LayerBuilder {
  entries: TarSpec[] = [];
  /** Paths this layer wrote (an opaque marker hides only what lower layers had). */
  written = new Set<string>();
  constructor(readonly view: Map<string, ModelNode>) {}

  #parents(path: string): void {
    const parts = path.split("/");
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join("/");
      const node = this.view.get(dir);
      if (node?.type === "dir" && this.entries.some((e) => e.path === `${dir}/`)) continue;
      if (node && node.type !== "dir") this.#remove(dir);
      this.entries.push({ path: `${dir}/`, type: "dir" });
      this.view.set(dir, { type: "dir" });
    }
  }

  #remove(path: string): void {
    for (const p of [...this.view.keys()]) if (p === path || p.startsWith(`${path}/`)) this.view.delete(p);
  }

  file(path: string, data: Uint8Array, mode = 0o644): void {
    this.#parents(path);
    this.#remove(path);
    this.entries.push({ path, content: data, mode });
    this.view.set(path, { type: "file", content: data });
    this.written.add(path);
  }

  symlink(path: string, target: string): void {
    this.#parents(path);
    this.#remove(path);
    this.entries.push({ path, type: "symlink", linkname: target });
    this.view.set(path, { type: "symlink", target });
    this.written.add(path);
  }

  hardlink(path: string, target: string): void {
    const node = this.view.get(target);
    if (node?.type !== "file") return;
    this.#parents(path);
    this.#remove(path);
    this.entries.push({ path, type: "hardlink", linkname: target });
    this.view.set(path, { type: "file", content: node.content });
    this.written.add(path);
  }

  whiteout(path: string): void {
    const slash = path.lastIndexOf("/");
    const dir = slash < 0 ? "" : path.slice(0, slash);
    if (dir) this.#parents(`${dir}/x`);
    this.entries.push({ path: `${dir ? dir + "/" : ""}.wh.${path.slice(slash + 1)}`, content: "" });
    this.#remove(path);
  }

  opaque(dir: string): void {
    this.#parents(`${dir}/x`);
    this.entries.push({ path: `${dir}/.wh..wh..opq`, content: "" });
    for (const p of [...this.view.keys()]) {
      if (p.startsWith(`${dir}/`) && !this.written.has(p)) this.view.delete(p);
    }
  }

  tar(): Uint8Array {
    return buildTar(this.entries);
  }
}

function files(view: Map<string, ModelNode>): [string, Uint8Array][] {
  return [...view].filter(([, n]) => n.type === "file").map(([p, n]) => [p, (n as { content: Uint8Array }).content]);
}

/** Generates an old/new pair from `seed`; `scale` multiplies the number of files. */
export function randomPair(seed: number, scale = 1): RandomPair {
  const rnd = prng(seed);
  const view = new Map<string, ModelNode>();
  const dirs = ["usr/bin", "usr/lib", "etc", "opt/app/data", "var/lib/x", "usr/share/doc"];
  const oldLayers: Uint8Array[] = [];

  // Old layer 0: a base tree.
  let b = new LayerBuilder(view);
  for (let i = 0; i < 25 * scale; i++) {
    b.file(`${pick(rnd, dirs)}/${name(rnd)}`, content(rnd, Math.floor(rnd() * 12000)), rnd() < 0.1 ? 0o600 : 0o644);
  }
  const baseFiles = files(view);
  b.symlink("usr/bin/link", baseFiles[0][0]);
  b.hardlink(`etc/hard-${Math.floor(rnd() * 100)}`, baseFiles[1][0]);
  oldLayers.push(b.tar());
  const sharedBase = oldLayers[0];

  // Old layers 1 and 2: edits, deletions, opaque directories, links.
  for (let l = 1; l < 3; l++) {
    b = new LayerBuilder(view);
    const current = files(view);
    for (const [path, data] of current) {
      const r = rnd();
      if (r < 0.15) b.file(path, edited(rnd, data));
      else if (r < 0.25) b.whiteout(path);
    }
    if (rnd() < 0.5) b.opaque(pick(rnd, ["var/lib/x", "opt/app/data"]));
    for (let i = 0; i < 5 * scale; i++) {
      b.file(`${pick(rnd, dirs)}/${name(rnd)}`, content(rnd, Math.floor(rnd() * 8000)));
    }
    const now = files(view);
    if (now.length) b.hardlink(`usr/lib/hl${l}`, pick(rnd, now)[0]);
    b.symlink(`usr/bin/sl${l}`, "../lib");
    oldLayers.push(b.tar());
  }
  const oldView = new Map(view);

  // New image: the shared base (reused) or a changed one, then one layer of changes
  // against the old merged view.
  const newLayers: Uint8Array[] = [];
  const newView = new Map<string, ModelNode>();
  if (rnd() < 0.6) newLayers.push(sharedBase);
  else {
    const nb = new LayerBuilder(newView);
    for (const [path, data] of files(oldView).slice(0, 10)) nb.file(path, rnd() < 0.5 ? edited(rnd, data) : data);
    newLayers.push(nb.tar());
  }
  const top = new LayerBuilder(newView);
  for (const [path, data] of files(oldView)) {
    const r = rnd();
    if (r < 0.3) top.file(path, edited(rnd, data)); // edited in place
    else if (r < 0.4) top.file(`opt/moved/${path.split("/").pop()}`, edited(rnd, data)); // moved and edited
    else if (r < 0.5) top.file(path.replace(/\d+/, (d) => String(Number(d) + 1)), data); // renamed version
    else if (r < 0.6) top.file(path, data); // unchanged, carried again
    else if (r < 0.7) top.whiteout(path);
  }
  for (let i = 0; i < 5 * scale; i++) top.file(`usr/share/new/${name(rnd)}`, content(rnd, Math.floor(rnd() * 6000)));
  const created = files(newView);
  if (created.length) top.hardlink("usr/bin/newhard", pick(rnd, created)[0]);
  top.symlink("usr/bin/newlink", "../share/new");
  top.file("empty-file", new Uint8Array(0));
  newLayers.push(top.tar());
  return { oldLayers, newLayers, oldView };
}
