import { afterAll, describe, expect, test } from "bun:test";
import { appendFileSync, mkdtempSync, readFileSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatRecord, LogWriter, parseRecord, type LogRecord } from "@checkout/common/log";
import { parseLog } from "@checkout/common/replay";

const take: LogRecord = {
  seq: 17,
  at: "2026-11-26T05:12:01.004Z",
  op: "stock.take",
  writes: {
    "item:3": { stock: "9", price: "5" },
    "op:a1:1": { items: '[["3",1]]', state: "refused", reason: "insufficient_stock", message: "item 3 has 0 in stock, 1 requested" },
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
    const torn = formatRecord(record(2, 20)).slice(0, 30) + "\n";
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

describe("LogWriter", () => {
  const dir = mkdtempSync(join(tmpdir(), "log-writer-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("a line appended after another process's torn write is read back whole", async () => {
    const path = join(dir, "stock_log.txt");
    // The standby's writer has been open since before the active replica died.
    const writer = await LogWriter.open(path);
    await writer.append(formatRecord(record(1, 10)));
    // The active replica, killed in the middle of its write: its last line is cut, with no newline.
    appendFileSync(path, formatRecord(record(2, 20)).slice(0, 40));
    await writer.append(formatRecord(record(3, 30)) + formatRecord(record(4, 40)));
    await writer.close();
    const parsed = parseLog(readFileSync(path, "utf8"));
    expect(parsed.records.map((r) => r.seq)).toEqual([1, 3, 4]);
    expect(parsed.skipped).toBe(1);
  });

  test("lines refused when their write begins stay out of the log; the others of that write go in", async () => {
    const path = join(dir, "payment_log.txt");
    const writer = await LogWriter.open(path);
    const refusal = new Error("refused");
    const appends = [
      writer.append(formatRecord(record(1, 10))),
      writer.append(formatRecord(record(2, 20)), () => refusal),
      writer.append(formatRecord(record(3, 30)), () => undefined),
    ];
    const outcomes = await Promise.allSettled(appends);
    await writer.close();
    expect(outcomes.map((o) => o.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect((outcomes[1] as PromiseRejectedResult).reason).toBe(refusal);
    expect(parseLog(readFileSync(path, "utf8")).records.map((r) => r.seq)).toEqual([1, 3]);
  });

  test("lines written again after a compaction renamed the log are asked again, and stay out if refused now", async () => {
    const path = join(dir, "order_log.txt");
    const renamed = join(dir, "order_log.compacting.txt");
    const writer = await LogWriter.open(path);
    // A compaction renames the log before the write lands: it goes to the renamed file, then again to a new log.
    renameSync(path, renamed);
    let asked = 0;
    const lostSinceFirstWrite = () => (++asked > 1 ? new Error("connection lost") : undefined);
    const refusedLate = writer.append(formatRecord(record(1, 10)), lostSinceFirstWrite).then(() => "written", (err) => err.message);
    const accepted = writer.append(formatRecord(record(2, 20)));
    expect(await refusedLate).toBe("connection lost");
    await accepted;
    await writer.close();
    expect(parseLog(readFileSync(path, "utf8")).records.map((r) => r.seq)).toEqual([2]);
  });
});
