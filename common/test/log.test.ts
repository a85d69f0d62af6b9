import { describe, expect, test } from "bun:test";
import { formatRecord, parseRecord, type LogRecord } from "@checkout/common/log";
import { parseLog } from "@checkout/common/replay";

const take: LogRecord = {
  seq: 17,
  at: "2026-11-26T05:12:01.004Z",
  op: "stock.take",
  writes: {
    "item:3": { stock: "9", price: "5" },
    "op:a1:1": {
      items: '[["3",1]]',
      state: "refused",
      reason: "insufficient_stock",
      message: "item 3 has 0 in stock, 1 requested",
    },
  },
};

const record = (seq: number, stock: number): LogRecord => ({
  seq,
  at: "2026-11-26T05:12:01.004Z",
  op: "stock.add",
  writes: { "item:1": { stock: String(stock), price: "5" } },
});

describe("a log line", () => {
  test("is one line ending in a newline", () => {
    const line = formatRecord(take);
    expect(line.endsWith("\n")).toBe(true);
    expect(line.indexOf("\n")).toBe(line.length - 1);
  });

  test("parses back to the record it was formatted from", () => {
    expect(parseRecord(formatRecord(take))).toEqual(take);
  });

  test("keeps values with spaces, quotes and newlines intact", () => {
    const odd: LogRecord = { ...take, writes: { "op:x:1": { message: 'a "quoted"\nmulti line  value', empty: "" } } };
    const line = formatRecord(odd);
    expect(line.indexOf("\n")).toBe(line.length - 1);
    expect(parseRecord(line)).toEqual(odd);
  });

  test("cut anywhere before its end parses to null", () => {
    const line = formatRecord(take);
    // Every proper prefix of the line's content (the last character before the newline excluded).
    for (let cut = 0; cut < line.length - 1; cut++) {
      expect({ cut, record: parseRecord(line.slice(0, cut)) }).toEqual({ cut, record: null });
    }
  });

  test("that is foreign text parses to null", () => {
    expect(parseRecord("hello world")).toBeNull();
    expect(parseRecord("17 2026-11-26T05:12:01.004Z stock.add [1,2]")).toBeNull();
    expect(parseRecord('17 2026-11-26T05:12:01.004Z stock.add {"item:1":"not a hash"}')).toBeNull();
  });
});

describe("parseLog", () => {
  test("reads every whole line, in order", () => {
    const text = [record(1, 10), record(2, 20), record(3, 30)].map(formatRecord).join("");
    const parsed = parseLog(text);
    expect(parsed.records.map((r) => r.seq)).toEqual([1, 2, 3]);
    expect(parsed.consumed).toBe(text.length);
    expect(parsed.skipped).toBe(0);
  });

  test("leaves a torn last line unread and reports consumed up to the last newline", () => {
    const whole = [record(1, 10), record(2, 20)].map(formatRecord).join("");
    const torn = formatRecord(record(3, 30));
    for (let cut = 1; cut < torn.length; cut++) {
      const parsed = parseLog(whole + torn.slice(0, cut));
      expect(parsed.records.map((r) => r.seq)).toEqual([1, 2]);
      expect(parsed.consumed).toBe(whole.length);
    }
  });

  test("skips a torn line in the middle and counts it", () => {
    const torn = `${formatRecord(record(2, 20)).slice(0, 30)}\n`;
    const text = formatRecord(record(1, 10)) + torn + formatRecord(record(3, 30));
    const parsed = parseLog(text);
    expect(parsed.records.map((r) => r.seq)).toEqual([1, 3]);
    expect(parsed.skipped).toBe(1);
    expect(parsed.consumed).toBe(text.length);
  });

  test("of an empty text reads nothing and consumes nothing", () => {
    expect(parseLog("")).toEqual({ records: [], consumed: 0, skipped: 0 });
  });
});
