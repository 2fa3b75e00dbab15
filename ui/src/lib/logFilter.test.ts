import { describe, expect, it } from "vitest";
import type { SavedLogFilter } from "../bindings/SavedLogFilter";
import { BackendError } from "./ipc";
import { EMPTY_DRAFT, backendDraftErrors, compileDraft, draftFromSaved, formatLocal, isEmptyDraft, parseLocal, presentParts, rangeLabel } from "./logFilter";
import type { FilterDraft } from "./logFilter";

// A fixed instant: a relative range is anchored on the `now` it is given.
const now = Date.UTC(2027, 2, 15, 12, 0, 0);
const draft = (change: Partial<FilterDraft>): FilterDraft => ({ ...EMPTY_DRAFT, ...change });

describe("log filter drafts", () => {
  it("reads only real local date-times", () => {
    const d = parseLocal("2027-02-28 23:59:30");
    expect(d && formatLocal(d)).toBe("2027-02-28 23:59");
    expect(parseLocal("2028-02-29T12:00")?.getDate()).toBe(29);
    // Date would roll these over into the next month or day.
    expect(parseLocal("2027-02-29 10:00")).toBeNull();
    expect(parseLocal("2027-04-31 10:00")).toBeNull();
    expect(parseLocal("2027-03-01 24:00")).toBeNull();
    expect(parseLocal("yesterday")).toBeNull();
  });

  it("turns a relative range into a start before now and keeps the range", () => {
    const { applied, errors } = compileDraft(draft({ range: 3600 }), now);
    expect(errors).toEqual({});
    expect(applied).toEqual({ filter: { from: "2027-03-15T11:00:00.000Z" }, lastSeconds: 3600 });
  });

  it("sends only the parts that filter, amounts as typed and latency in microseconds", () => {
    const { applied } = compileDraft(
      draft({ consumer: " con_1 ", statusClass: "4", reason: "insufficient-funds", latencyMin: "1.5", latencyMax: "250", costMin: "0.000001", costMax: "12.25" }),
      now,
    );
    expect(applied?.filter).toEqual({
      consumer_id: "con_1",
      status_class: 4,
      reason: "insufficient-funds",
      latency_min_us: 1500,
      latency_max_us: 250_000,
      cost_min: "0.000001",
      cost_max: "12.25",
    });
    expect(applied?.lastSeconds).toBeNull();
  });

  it("names the problem of each field and applies nothing", () => {
    const { applied, errors } = compileDraft(
      draft({ range: "custom", from: "2027-03-02 10:00", to: "2027-03-01 10:00", statusClass: "7", latencyMin: "-1", costMin: "1.1234567", costMax: "abc" }),
      now,
    );
    expect(applied).toBeNull();
    expect(Object.keys(errors).sort()).toEqual(["costMax", "costMin", "latencyMin", "statusClass", "to"]);
    expect(errors.to).toBe("must be after the start");
  });

  it("compares amounts exactly, not as floating point", () => {
    // 0.1 + 0.2 style rounding would make these equal or reversed.
    expect(compileDraft(draft({ costMin: "0.300001", costMax: "0.3" }), now).errors.costMax).toBe("must not be below the minimum");
    expect(compileDraft(draft({ costMin: "999999999999.999999", costMax: "999999999999.999999" }), now).errors).toEqual({});
    expect(compileDraft(draft({ latencyMin: "5", latencyMax: "4.999" }), now).errors.latencyMax).toBe("must not be below the minimum");
  });

  it("asks for a start or an end in a custom range", () => {
    expect(compileDraft(draft({ range: "custom" }), now).errors.from).toBe("give a start, an end, or both");
    expect(compileDraft(draft({ range: "custom", to: "2027-03-01 18:00" }), now).errors).toEqual({});
  });

  it("comes back from a saved filter as it was typed", () => {
    const typed = draft({ range: "custom", from: "2027-12-31 23:59", to: "2028-01-01 00:30", api: "chat", latencyMin: "2.5", costMax: "3" });
    const { applied } = compileDraft(typed, now);
    if (!applied) throw new Error("the draft should compile");
    const saved = { id: "f1", instance_id: "i1", name: "new year", filter: applied.filter, created_at: "2027-01-01T00:00:00Z" } as SavedLogFilter;
    expect(draftFromSaved(saved)).toEqual(typed);
    // A relative range is saved as its length, not as the instant it once meant.
    expect(draftFromSaved({ ...saved, filter: { from: "2020-01-01T00:00:00Z" }, last_seconds: 86_400 }).range).toBe(86_400);
  });

  it("never reads a null from the backend as a value", () => {
    const parts = presentParts({ latency_min_us: null, api: "chat" } as never);
    expect(parts).toEqual({ api: "chat" });
  });

  it("puts the backend's validation errors on the draft's fields", () => {
    const error = new BackendError("validation", "the filter is not valid", [
      { field: "filter.cost_min", message: "at most 6 decimals" },
      { field: "status_class", message: "1 to 5" },
      { field: "filter.unknown", message: "ignored" },
    ]);
    expect(backendDraftErrors(error)).toEqual({ costMin: "at most 6 decimals", statusClass: "1 to 5" });
    expect(backendDraftErrors(null)).toEqual({});
  });

  it("knows an empty draft and labels ranges", () => {
    expect(isEmptyDraft(EMPTY_DRAFT)).toBe(true);
    expect(isEmptyDraft(draft({ text: "x" }))).toBe(false);
    expect(rangeLabel(3600)).toBe("Last hour");
    expect(rangeLabel(3 * 86_400)).toBe("Last 3 days");
    expect(rangeLabel(2 * 3600)).toBe("Last 2 h");
    expect(rangeLabel(90)).toBe("Last 2 min");
  });
});
