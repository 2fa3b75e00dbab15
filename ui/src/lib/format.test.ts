import { describe, expect, it } from "vitest";
import { count, latency, relativeTime, share, skew } from "./format";

describe("formatting", () => {
  it("says how long ago, or how soon, relative to the clock", () => {
    const now = Date.now();
    expect(relativeTime(new Date(now - 90_000).toISOString(), now)).toBe("1 min ago");
    expect(relativeTime(new Date(now - 3 * 3_600_000 - 60_000).toISOString(), now)).toBe("3 h ago");
    expect(relativeTime(new Date(now + 630_000).toISOString(), now)).toBe("in 10 min");
    expect(relativeTime(new Date(now).toISOString(), now)).toBe("just now");
    expect(relativeTime("not a time", now)).toBe("not a time");
  });

  it("writes skews, latencies, counts and shares", () => {
    expect(skew(undefined)).toBe("—");
    expect(skew(1200)).toBe("+1.2 s");
    expect(skew(-350)).toBe("−350 ms");
    expect(skew(0)).toBe("±0 ms");
    expect(latency(7.14)).toBe("7.1 ms");
    expect(latency(250.6)).toBe("251 ms");
    expect(count(1234567)).toBe((1234567).toLocaleString());
    expect(share(0, 0)).toBe("");
    expect(share(1, 1000)).toBe("<1%");
    expect(share(999, 1000)).toBe(">99%");
  });
});
