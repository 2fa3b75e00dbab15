import { useId } from "react";
import type { ReactNode } from "react";

import type { BackendError } from "../../lib/backend";
import { EMPTY_DRAFT, RANGE_PRESETS, formatLocal, isEmptyDraft, rangeLabel } from "../../lib/logFilter";
import type { DraftErrors, DraftField, FilterDraft } from "../../lib/logFilter";
import { FormError } from "../common/FormError";

interface LogFiltersProps {
  draft: FilterDraft;
  /** Gets an update of the draft (a function: two quick changes never undo each other). */
  onChange: (update: (draft: FilterDraft) => FilterDraft) => void;
  errors: DraftErrors;
  /** A backend refusal that names no field of the draft. */
  backendError: BackendError | null;
  now: number;
  actions?: ReactNode;
}

/** One labelled control of the filter bar, with its inline error. */
function FilterField({ label, error, className, children }: { label: string; error: string | undefined; className?: string; children: (id: string, errorId: string) => ReactNode }) {
  const id = useId();
  const errorId = `${id}-error`;
  return (
    <div className={["logs-filter", className, error ? "field-invalid" : null].filter(Boolean).join(" ")}>
      <label htmlFor={id}>{label}</label>
      {children(id, errorId)}
      {error && (
        <span id={errorId} className="field-error" role="alert">
          {error}
        </span>
      )}
    </div>
  );
}

/** The explorer's filter bar: time range, ids, status, reason, latency, cost and full-text search. */
export function LogFilters({ draft, onChange, errors, backendError, now, actions }: LogFiltersProps) {
  const set = <K extends DraftField>(field: K, value: FilterDraft[K]) => onChange((d) => ({ ...d, [field]: value }));
  const input = (field: Exclude<DraftField, "range">, label: string, placeholder: string, className?: string, inputMode?: "decimal") => (
    <FilterField label={label} error={errors[field]} className={className}>
      {(id, errorId) => (
        <input
          id={id}
          value={draft[field]}
          placeholder={placeholder}
          inputMode={inputMode}
          spellCheck={false}
          autoComplete="off"
          aria-invalid={errors[field] ? true : undefined}
          aria-describedby={errors[field] ? errorId : undefined}
          data-testid={`logs-filter-${field}`}
          onChange={(e) => set(field, e.target.value)}
        />
      )}
    </FilterField>
  );
  const presets = RANGE_PRESETS.map((p) => p.seconds);
  const rangeValue = String(draft.range);

  return (
    <div className="logs-filters" data-testid="logs-filters">
      <div className="logs-filter-row">
        <FilterField label="Search" error={errors.text} className="logs-filter-search">
          {(id) => (
            <input
              id={id}
              type="search"
              value={draft.text}
              placeholder="request id, consumer, error, path, user agent…"
              spellCheck={false}
              autoComplete="off"
              aria-describedby="logs-search-hint"
              data-testid="logs-filter-text"
              onChange={(e) => set("text", e.target.value)}
            />
          )}
        </FilterField>
        <span className="field-hint logs-search-hint" id="logs-search-hint">
          Every word must match; end a word with <code>*</code> for a prefix (<code>req_01j*</code>).
        </span>
      </div>
      <div className="logs-filter-row">
        <FilterField label="Time" error={undefined}>
          {(id) => (
            <select
              id={id}
              value={rangeValue}
              data-testid="logs-filter-range"
              onChange={(e) => {
                const v = e.target.value;
                if (v === "custom") {
                  // Start from the last 24 h, to be edited.
                  onChange((d) => ({ ...d, range: "custom", from: d.from || formatLocal(new Date(now - 86_400_000)), to: d.to || formatLocal(new Date(now + 60_000)) }));
                } else set("range", v === "all" ? "all" : Number(v));
              }}
            >
              <option value="all">All cached</option>
              {RANGE_PRESETS.map((p) => (
                <option key={p.seconds} value={p.seconds}>
                  {p.label}
                </option>
              ))}
              {typeof draft.range === "number" && !presets.includes(draft.range) && <option value={draft.range}>{rangeLabel(draft.range)}</option>}
              <option value="custom">Custom…</option>
            </select>
          )}
        </FilterField>
        {draft.range === "custom" && (
          <>
            {input("from", "From (local)", "2025-03-01 14:30", "logs-filter-date")}
            {input("to", "To (local)", "2025-03-01 18:00", "logs-filter-date")}
          </>
        )}
        <FilterField label="Status" error={errors.statusClass}>
          {(id) => (
            <select id={id} value={draft.statusClass} data-testid="logs-filter-status" onChange={(e) => set("statusClass", e.target.value)}>
              <option value="">Any</option>
              <option value="2">2xx success</option>
              <option value="4">4xx refused</option>
              <option value="5">5xx failed</option>
              <option value="1">1xx</option>
              <option value="3">3xx</option>
            </select>
          )}
        </FilterField>
        {input("reason", "Problem reason", "insufficient-funds")}
        {input("consumer", "Consumer id", "con_…")}
        {input("key", "Key id", "key_…")}
        {input("api", "API", "chat")}
        {input("model", "Model", "gpt-4o-mini")}
      </div>
      <div className="logs-filter-row">
        {input("latencyMin", "Latency ≥ (ms)", "0", "logs-filter-num", "decimal")}
        {input("latencyMax", "Latency ≤ (ms)", "∞", "logs-filter-num", "decimal")}
        {input("costMin", "Cost ≥", "0.00", "logs-filter-num", "decimal")}
        {input("costMax", "Cost ≤", "∞", "logs-filter-num", "decimal")}
        <button type="button" className="link-button logs-clear" onClick={() => onChange(() => EMPTY_DRAFT)} disabled={isEmptyDraft(draft)} data-testid="logs-filter-clear">
          Clear filters
        </button>
        <span className="spacer" />
        {actions}
      </div>
      <FormError error={backendError} lead="The filter was refused:" testId="logs-filter-error" />
    </div>
  );
}
