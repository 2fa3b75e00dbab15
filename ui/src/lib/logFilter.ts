import type { LogFilter } from "../bindings/LogFilter";
import type { SavedLogFilter } from "../bindings/SavedLogFilter";
import type { BackendError } from "./backend";

// The explorer's filter as typed (strings, so that a half-typed value stays
// on screen), and its translation into the backend's `LogFilter` with every
// problem named on its field. The backend checks the same rules again.

/** Seconds of a relative range, "all", or "custom" (from / to typed). */
export type RangeChoice = number | "all" | "custom";

export interface FilterDraft {
  range: RangeChoice;
  /** Local date-times, "YYYY-MM-DD HH:MM[:SS]" (custom range only). */
  from: string;
  to: string;
  consumer: string;
  key: string;
  api: string;
  model: string;
  /** "" or "1"–"5". */
  statusClass: string;
  reason: string;
  /** Milliseconds, decimals allowed. */
  latencyMin: string;
  latencyMax: string;
  /** Decimal amounts in the records' currency. */
  costMin: string;
  costMax: string;
  text: string;
}

export type DraftField = keyof FilterDraft;
export type DraftErrors = Partial<Record<DraftField, string>>;

export const EMPTY_DRAFT: FilterDraft = {
  range: "all",
  from: "",
  to: "",
  consumer: "",
  key: "",
  api: "",
  model: "",
  statusClass: "",
  reason: "",
  latencyMin: "",
  latencyMax: "",
  costMin: "",
  costMax: "",
  text: "",
};

export const RANGE_PRESETS: readonly { seconds: number; label: string }[] = [
  { seconds: 15 * 60, label: "Last 15 min" },
  { seconds: 3600, label: "Last hour" },
  { seconds: 86_400, label: "Last 24 h" },
  { seconds: 7 * 86_400, label: "Last 7 days" },
  { seconds: 30 * 86_400, label: "Last 30 days" },
];

export function rangeLabel(seconds: number): string {
  const preset = RANGE_PRESETS.find((p) => p.seconds === seconds);
  if (preset) return preset.label;
  if (seconds % 86_400 === 0) return `Last ${seconds / 86_400} days`;
  if (seconds % 3600 === 0) return `Last ${seconds / 3600} h`;
  return `Last ${Math.round(seconds / 60)} min`;
}

/** What the explorer applies: the filter, and the relative range it came from (kept when saved). */
export interface AppliedFilter {
  filter: LogFilter;
  lastSeconds: number | null;
}

const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})(?::(\d{2}))?$/;
const DECIMAL = /^\d{1,12}(\.\d{1,6})?$/;
const NUMBER = /^\d+(\.\d+)?$/;

/** A local "YYYY-MM-DD HH:MM[:SS]" as a Date, or null when it is not a real date-time. */
export function parseLocal(text: string): Date | null {
  const m = DATE_TIME.exec(text.trim());
  if (!m) return null;
  const [y, mo, d, h, mi, s] = m.slice(1).map((v: string | undefined) => Number(v ?? "0")) as [number, number, number, number, number, number];
  const date = new Date(y, mo - 1, d, h, mi, s);
  // Rejects 2025-02-31 and 25:00, which Date would roll over.
  if (date.getFullYear() !== y || date.getMonth() !== mo - 1 || date.getDate() !== d || date.getHours() !== h || date.getMinutes() !== mi) return null;
  return date;
}

/** A Date as the custom range's local "YYYY-MM-DD HH:MM". */
export function formatLocal(date: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${p(date.getMonth() + 1)}-${p(date.getDate())} ${p(date.getHours())}:${p(date.getMinutes())}`;
}

/** Milliseconds typed → microseconds, or an error. */
function latencyUs(text: string): number | string | null {
  const t = text.trim();
  if (t === "") return null;
  if (!NUMBER.test(t)) return "a number of milliseconds, 0 or more";
  const us = Math.round(Number(t) * 1000);
  return Number.isSafeInteger(us) ? us : "too large";
}

function decimal(text: string): string | null | { error: string } {
  const t = text.trim();
  if (t === "") return null;
  if (!DECIMAL.test(t)) return { error: "a decimal amount, 0 or more, at most 6 decimals (e.g. 0.25)" };
  return t;
}

/** Micro-units of a checked decimal, for comparing two of them. */
function micros(decimal: string): bigint {
  const [whole = "0", fraction = ""] = decimal.split(".");
  return BigInt(whole) * 1_000_000n + BigInt(fraction.padEnd(6, "0"));
}

/** The draft as a filter, or the problem of each field. `now` anchors a relative range. */
export function compileDraft(draft: FilterDraft, now: number): { applied: AppliedFilter | null; errors: DraftErrors } {
  const errors: DraftErrors = {};
  const filter: LogFilter = {};
  let lastSeconds: number | null = null;
  if (typeof draft.range === "number") {
    lastSeconds = draft.range;
    filter.from = new Date(now - draft.range * 1000).toISOString();
  } else if (draft.range === "custom") {
    const from = draft.from.trim() ? parseLocal(draft.from) : null;
    const to = draft.to.trim() ? parseLocal(draft.to) : null;
    if (draft.from.trim() && !from) errors.from = "a date and time like 2025-03-01 14:30";
    if (draft.to.trim() && !to) errors.to = "a date and time like 2025-03-01 18:00";
    if (!draft.from.trim() && !draft.to.trim()) errors.from = "give a start, an end, or both";
    if (from && to && from.getTime() >= to.getTime()) errors.to = "must be after the start";
    if (from) filter.from = from.toISOString();
    if (to) filter.to = to.toISOString();
  }
  const text = (v: string) => v.trim() || undefined;
  filter.consumer_id = text(draft.consumer);
  filter.key_id = text(draft.key);
  filter.api = text(draft.api);
  filter.model = text(draft.model);
  filter.reason = text(draft.reason);
  filter.text = text(draft.text);
  if (draft.statusClass) {
    const c = Number(draft.statusClass);
    if (!Number.isInteger(c) || c < 1 || c > 5) errors.statusClass = "1xx to 5xx";
    else filter.status_class = c;
  }
  const latMin = latencyUs(draft.latencyMin);
  const latMax = latencyUs(draft.latencyMax);
  if (typeof latMin === "string") errors.latencyMin = latMin;
  else if (latMin !== null) filter.latency_min_us = latMin;
  if (typeof latMax === "string") errors.latencyMax = latMax;
  else if (latMax !== null) filter.latency_max_us = latMax;
  if (typeof latMin === "number" && typeof latMax === "number" && latMin > latMax) errors.latencyMax = "must not be below the minimum";
  const costMin = decimal(draft.costMin);
  const costMax = decimal(draft.costMax);
  if (costMin && typeof costMin === "object") errors.costMin = costMin.error;
  else if (costMin) filter.cost_min = costMin;
  if (costMax && typeof costMax === "object") errors.costMax = costMax.error;
  else if (costMax) filter.cost_max = costMax;
  if (typeof costMin === "string" && typeof costMax === "string" && micros(costMin) > micros(costMax)) errors.costMax = "must not be below the minimum";
  // Absent rather than undefined keys: the backend refuses nothing, but saved JSON stays small.
  for (const k of Object.keys(filter) as (keyof LogFilter)[]) if (filter[k] === undefined) Reflect.deleteProperty(filter, k);
  return Object.keys(errors).length > 0 ? { applied: null, errors } : { applied: { filter, lastSeconds }, errors };
}

/**
 * The filter without its empty parts. The backend sends an absent part as `null` (the generated
 * type says optional), and `null` must never read as a value (`null / 1000` is 0).
 */
export function presentParts(filter: LogFilter): LogFilter {
  const parts: [string, unknown][] = Object.entries(filter);
  return Object.fromEntries(parts.filter(([, v]) => v !== null && v !== undefined));
}

/** A saved filter back into a draft. */
export function draftFromSaved(saved: SavedLogFilter): FilterDraft {
  const f = presentParts(saved.filter);
  const ms = (us: number | undefined) => (us === undefined ? "" : String(us / 1000));
  let range: RangeChoice = "all";
  if (typeof saved.last_seconds === "number") range = saved.last_seconds;
  else if (f.from !== undefined || f.to !== undefined) range = "custom";
  return {
    range,
    from: f.from && range === "custom" ? formatLocal(new Date(f.from)) : "",
    to: f.to && range === "custom" ? formatLocal(new Date(f.to)) : "",
    consumer: f.consumer_id ?? "",
    key: f.key_id ?? "",
    api: f.api ?? "",
    model: f.model ?? "",
    statusClass: f.status_class === undefined ? "" : String(f.status_class),
    reason: f.reason ?? "",
    latencyMin: ms(f.latency_min_us),
    latencyMax: ms(f.latency_max_us),
    costMin: f.cost_min ?? "",
    costMax: f.cost_max ?? "",
    text: f.text ?? "",
  };
}

/** The backend's field names → the draft's. */
const BACKEND_FIELDS: Record<string, DraftField> = {
  from: "from",
  to: "to",
  consumer_id: "consumer",
  key_id: "key",
  api: "api",
  model: "model",
  status_class: "statusClass",
  reason: "reason",
  latency_min_us: "latencyMin",
  latency_max_us: "latencyMax",
  cost_min: "costMin",
  cost_max: "costMax",
  text: "text",
};

/** A validation error from the backend, on the draft's fields. */
export function backendDraftErrors(error: BackendError | null): DraftErrors {
  const out: DraftErrors = {};
  for (const f of error?.fields ?? []) {
    const field = BACKEND_FIELDS[f.field.replace(/^filter\./, "")];
    if (field) out[field] = f.message;
  }
  return out;
}

/** Whether the draft filters anything. */
export function isEmptyDraft(draft: FilterDraft): boolean {
  return (Object.keys(EMPTY_DRAFT) as DraftField[]).every((k) => draft[k] === EMPTY_DRAFT[k]);
}
