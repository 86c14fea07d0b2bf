/**
 * Test helper: a terminal that understands what the progress display writes
 * (text, `\r`, `\n`, `ESC[nA` cursor up, `ESC[2K` clear line, `ESC[J` clear to
 * the end of the screen), keeps the screen as rows of text, and records every
 * cursor-up movement so a test can check it never went above a given row.
 */

/** A minimal terminal screen. */
export class FakeTerminal {
  rows: string[] = [""];
  row = 0;
  col = 0;
  /** The rows the cursor reached by moving up, in order. */
  upTargets: number[] = [];
  /** Sequences it did not understand. */
  unknown: string[] = [];
  #dec = new TextDecoder();

  /** Feeds bytes (as a stderr writer would get them). */
  write = (bytes: Uint8Array): void => this.feed(this.#dec.decode(bytes));

  /** Feeds text. */
  feed(text: string): void {
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (c === "\x1b") {
        // deno-lint-ignore no-control-regex
        const m = /^\x1b\[([0-9]*)([A-Za-z])/.exec(text.slice(i));
        if (!m) {
          this.unknown.push(text.slice(i, i + 8));
          continue;
        }
        i += m[0].length - 1;
        const n = m[1] === "" ? 1 : Number(m[1]);
        if (m[2] === "A") {
          this.row = Math.max(0, this.row - n);
          this.upTargets.push(this.row);
        } else if (m[2] === "K" && m[1] === "2") {
          this.rows[this.row] = "";
        } else if (m[2] === "J") {
          this.rows[this.row] = this.rows[this.row].slice(0, this.col);
          this.rows.length = this.row + 1;
        } else {
          this.unknown.push(m[0]);
        }
      } else if (c === "\r") {
        this.col = 0;
      } else if (c === "\n") {
        this.row++;
        this.col = 0;
        while (this.rows.length <= this.row) this.rows.push("");
      } else {
        const line = this.rows[this.row].padEnd(this.col);
        this.rows[this.row] = line.slice(0, this.col) + c + line.slice(this.col + 1);
        this.col++;
      }
    }
  }

  /** The screen's rows, the empty last one (where the cursor waits) dropped. */
  get lines(): string[] {
    const rows = [...this.rows];
    while (rows.length > 0 && rows[rows.length - 1] === "") rows.pop();
    return rows;
  }

  /** The index of the first row matching `re` (-1 when none). */
  find(re: RegExp): number {
    return this.rows.findIndex((r) => re.test(r));
  }
}
