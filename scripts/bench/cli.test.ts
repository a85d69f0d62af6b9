import { describe, expect, test } from "bun:test";
import { DEFAULT_REPLICAS } from "../lib/cli";
import { ALL_SHAPES, DEFAULTS, parseCli, UsageError } from "./cli";
import { minStepRecordRetentionMs } from "../../common/src/timing";
import { SOAK } from "./shapes/soak";

describe("parseCli", () => {
  test("no arguments run the default shape against the default gateway", () => {
    expect(parseCli([])).toEqual({
      url: DEFAULTS.url,
      shapes: [DEFAULTS.shape],
      clients: DEFAULTS.clients,
      seconds: DEFAULTS.seconds,
      warmupSeconds: DEFAULTS.warmupSeconds,
      orders: DEFAULTS.orders,
      retentionS: SOAK.defaultRetentionS,
      jsonFile: undefined,
      startStack: false,
      replicas: DEFAULT_REPLICAS,
      balancing: "active-standby",
      compareBalancing: false,
      skeletonUrl: undefined,
      help: false,
    });
  });

  test("--shape all runs the skeleton first, then the real shapes", () => {
    expect(parseCli(["--shape", "all"]).shapes).toEqual([...ALL_SHAPES]);
    expect(ALL_SHAPES[0]).toBe("skeleton");
  });

  test("--shape soak runs for four retentions by default, with the shortest retention allowed", () => {
    expect(parseCli(["--shape", "soak"])).toMatchObject({
      shapes: ["soak"],
      seconds: SOAK.defaultSeconds,
      retentionS: SOAK.defaultRetentionS,
    });
    expect(parseCli(["--shape", "soak", "--retention", "86400", "--seconds", "60"])).toMatchObject({
      seconds: 60,
      retentionS: 86400,
    });
    expect(SOAK.defaultRetentionS * 1000).toBeGreaterThanOrEqual(minStepRecordRetentionMs());
  });

  test("numbers and flags are read", () => {
    const o = parseCli(["--clients", "128", "--seconds", "30", "--json", "out.json", "--start-stack", "--shape=hot"]);
    expect(o).toMatchObject({ clients: 128, seconds: 30, jsonFile: "out.json", startStack: true, shapes: ["hot"] });
  });

  test("--balancing chooses the started stacks' balancing; --compare-balancing starts its own stacks", () => {
    expect(parseCli(["--start-stack", "--balancing", "round-robin"])).toMatchObject({
      balancing: "round-robin",
      compareBalancing: false,
    });
    expect(parseCli(["--compare-balancing"])).toMatchObject({ compareBalancing: true, startStack: true });
  });

  test.each([
    [["--balancing", "random"]],
    [["--compare-balancing", "--url", "http://127.0.0.1:9000"]],
    [["--shape", "bursty"]],
    [["--clients", "0"]],
    [["--clients", "1.5"]],
    [["--seconds", "-3"]],
    [["--frobnicate"]],
    [["--start-stack", "--url", "http://127.0.0.1:9000"]],
    [["--shape", "soak", "--url", "http://127.0.0.1:9000"]],
    [["--shape", "soak", "--retention", String(SOAK.defaultRetentionS - 1)]],
    [["--retention", "600"]],
  ])("%j is a usage error", (argv) => {
    expect(() => parseCli(argv)).toThrow(UsageError);
  });

  test("only loopback targets are accepted", () => {
    expect(parseCli(["--url", "http://localhost:8000/"]).url).toBe("http://localhost:8000");
    expect(parseCli(["--url", "http://127.0.0.2:8000"]).url).toBe("http://127.0.0.2:8000");
    expect(parseCli(["--url", "http://[::1]:8000"]).url).toBe("http://[::1]:8000");
    expect(() => parseCli(["--url", "http://10.0.0.5:8000"])).toThrow(/loopback/);
    expect(() => parseCli(["--url", "http://example.com"])).toThrow(/loopback/);
    expect(() => parseCli(["--skeleton-url", "http://192.168.1.1:8000"])).toThrow(/loopback/);
  });
});
