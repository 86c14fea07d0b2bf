import assert from "node:assert/strict";
import {
  call,
  code,
  get,
  I32,
  i32,
  i32Add,
  i32Load,
  i32Store,
  set,
  sleb,
  uleb,
  wasmModule,
} from "../src/util/wasm_encoder.ts";

Deno.test("wasm encoder: LEB128 as the WebAssembly spec (and DWARF's examples) gives it", () => {
  assert.deepEqual(uleb(0), [0]);
  assert.deepEqual(uleb(127), [0x7f]);
  assert.deepEqual(uleb(128), [0x80, 0x01]);
  assert.deepEqual(uleb(624485), [0xe5, 0x8e, 0x26]);
  assert.deepEqual(uleb(2 ** 32 - 1), [0xff, 0xff, 0xff, 0xff, 0x0f]);
  assert.deepEqual(sleb(0), [0]);
  assert.deepEqual(sleb(-1), [0x7f]);
  assert.deepEqual(sleb(63), [0x3f]);
  assert.deepEqual(sleb(64), [0xc0, 0x00]);
  assert.deepEqual(sleb(-64), [0x40]);
  assert.deepEqual(sleb(-65), [0xbf, 0x7f]);
  assert.deepEqual(sleb(-123456), [0xc0, 0xbb, 0x78]);
  assert.deepEqual(sleb(2 ** 31 - 1), [0xff, 0xff, 0xff, 0xff, 0x07]);
  assert.deepEqual(sleb(-(2 ** 31)), [0x80, 0x80, 0x80, 0x80, 0x78]);
});

Deno.test("wasm encoder: a module of two functions, one calling the other, validates and runs over its memory", () => {
  // sum(a, b) -> a + b + 1000; put(at, a, b) stores sum(a, b) at `at`.
  const bytes = wasmModule([
    {
      name: "sum",
      params: [I32, I32],
      results: [I32],
      locals: [],
      body: code(get(0), get(1), i32Add, i32(1000), i32Add),
    },
    {
      name: "put",
      params: [I32, I32, I32],
      results: [],
      locals: [I32],
      body: code(get(0), get(1), get(2), call(0), i32Store(4), get(0), i32Load(4), set(3)),
    },
  ]);
  assert.ok(WebAssembly.validate(bytes));
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 1 });
  const { exports } = new WebAssembly.Instance(new WebAssembly.Module(bytes), { e: { m: memory } });
  const sum = exports.sum as (a: number, b: number) => number;
  const put = exports.put as (at: number, a: number, b: number) => void;
  assert.equal(sum(2, -5), 997);
  put(64, 40, 2);
  assert.equal(
    new DataView(memory.buffer).getInt32(68, true),
    1042,
    "stored at the instruction's offset, little-endian",
  );
});
