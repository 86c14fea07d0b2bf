/**
 * Test helper: containers/storage's chunking of a file, ported literally (one
 * byte at a time, its state machines as they are) from
 * `pkg/chunked/compressor/compressor.go` (`holesFinder`,
 * `rollingChecksumReader`, the loop of `writeZstdChunkedStream`) and
 * `rollsum.go` at containers/storage 83cf5746: the oracle the fast chunker of
 * `compression/content_chunks.ts` is checked against. Too slow for anything
 * but tests.
 */

/** One chunk: where it starts in the file, how long, and whether it is a hole. */
export interface RefChunk {
  offset: number;
  size: number;
  zeros: boolean;
}

const THRESHOLD = 1024;

class RollSum {
  s1 = 64 * 31;
  s2 = 64 * 63 * 31;
  window = new Uint8Array(64);
  wofs = 0;
  roll(ch: number) {
    const drop = this.window[this.wofs];
    this.s1 = (this.s1 + ch - drop) >>> 0;
    this.s2 = (this.s2 + this.s1 - 64 * (drop + 31)) >>> 0;
    this.window[this.wofs] = ch;
    this.wofs = (this.wofs + 1) & 63;
  }
  onSplit(): boolean {
    return (this.s2 & 0xffff) === 0xffff;
  }
}

/** The chunks containers/storage cuts `data` into (`maxChunk`: the cap deltaship adds; Infinity for none). */
export function referenceChunks(data: Uint8Array, maxChunk = Infinity): RefChunk[] {
  // holesFinder
  let pos = 0;
  let zeros = 0;
  let state: "read" | "accumulate" | "found" | "eof" = "read";
  const readByte = (): { hole: number; b: number } | null => {
    for (;;) {
      switch (state) {
        case "read": {
          if (zeros > 0) {
            zeros--;
            return { hole: 0, b: 0 };
          }
          if (pos >= data.length) return null;
          const b = data[pos++];
          if (b !== 0) return { hole: 0, b };
          zeros = 1;
          state = zeros === THRESHOLD ? "found" : "accumulate";
          break;
        }
        case "accumulate": {
          if (pos >= data.length) {
            state = "eof";
            continue;
          }
          const b = data[pos++];
          if (b === 0) {
            zeros++;
            if (zeros === THRESHOLD) state = "found";
          } else {
            pos--;
            state = "read";
          }
          break;
        }
        case "found": {
          if (pos >= data.length) {
            state = "eof";
            const hole = zeros;
            zeros = 0;
            return { hole, b: 0 };
          }
          const b = data[pos++];
          if (b !== 0) {
            pos--;
            state = "read";
            const hole = zeros;
            zeros = 0;
            return { hole, b: 0 };
          }
          zeros++;
          break;
        }
        case "eof":
          if (zeros > 0) {
            zeros--;
            return { hole: 0, b: 0 };
          }
          return null;
      }
    }
  };
  // rollingChecksumReader, read one byte at a time (the buffer size does not move cut points)
  const rs = new RollSum();
  const chunks: RefChunk[] = [];
  let written = 0;
  let chunkStart = 0;
  let pendingHole = 0;
  const cut = (isZeros: boolean) => {
    if (written > chunkStart) chunks.push({ offset: chunkStart, size: written - chunkStart, zeros: isZeros });
    chunkStart = written;
  };
  for (;;) {
    if (pendingHole > 0) {
      written += pendingHole;
      pendingHole = 0;
      cut(true);
      continue;
    }
    const r = readByte();
    if (r === null) break;
    if (r.hole > 0) {
      for (let j = 0; j < r.hole; j++) rs.roll(0);
      pendingHole = r.hole;
      cut(false);
      continue;
    }
    written++;
    rs.roll(r.b);
    if (rs.onSplit() || written - chunkStart === maxChunk) cut(false);
  }
  cut(false);
  return chunks;
}
