import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import type { SubmitEvent } from "react";

import type { Instance } from "../../bindings/Instance";
import type { LogFilter } from "../../bindings/LogFilter";
import type { SavedLogFilter } from "../../bindings/SavedLogFilter";
import * as backend from "../../lib/backend";
import type { BackendError } from "../../lib/backend";
import { explorerKeys, useSavedLogFilters } from "../../lib/queries";
import { ConfirmDialog } from "../common/ConfirmDialog";
import { Dialog } from "../common/Dialog";
import { ErrorText } from "../common/ErrorText";
import { Field } from "../common/Field";
import { draftFromSaved, presentParts } from "../../lib/logFilter";
import type { AppliedFilter, FilterDraft } from "../../lib/logFilter";
import { useToast } from "../common/Toaster";
import { FormError } from "../common/FormError";
import { DialogActions } from "../common/DialogActions";

const NAME_MAX = 80;

/** A filter in a few words, for the save dialog and the list's titles. */
export function describeFilter(given: LogFilter, lastSeconds: number | null | undefined): string {
  const filter = presentParts(given);
  const parts: string[] = [];
  if (lastSeconds) parts.push(lastSeconds % 86_400 === 0 ? `last ${(lastSeconds / 86_400).toString()} d` : lastSeconds % 3600 === 0 ? `last ${(lastSeconds / 3600).toString()} h` : `last ${Math.round(lastSeconds / 60).toString()} min`);
  else if (filter.from || filter.to) parts.push(`${filter.from ? new Date(filter.from).toLocaleString() : "…"} → ${filter.to ? new Date(filter.to).toLocaleString() : "…"}`);
  if (filter.status_class) parts.push(`${filter.status_class.toString()}xx`);
  if (filter.reason) parts.push(`reason ${filter.reason}`);
  if (filter.consumer_id) parts.push(`consumer ${filter.consumer_id}`);
  if (filter.key_id) parts.push(`key ${filter.key_id}`);
  if (filter.api) parts.push(`API ${filter.api}`);
  if (filter.model) parts.push(`model ${filter.model}`);
  if (filter.latency_min_us !== undefined || filter.latency_max_us !== undefined)
    parts.push(`latency ${filter.latency_min_us !== undefined ? (filter.latency_min_us / 1000).toString() : "0"}–${filter.latency_max_us !== undefined ? (filter.latency_max_us / 1000).toString() : "∞"} ms`);
  if (filter.cost_min || filter.cost_max) parts.push(`cost ${filter.cost_min ?? "0"}–${filter.cost_max ?? "∞"}`);
  if (filter.text) parts.push(`“${filter.text}”`);
  return parts.length > 0 ? parts.join(" · ") : "everything cached";
}

function SaveFilterForm({ instance, applied, onDone, onCancel }: { instance: Instance; applied: AppliedFilter; onDone: (saved: SavedLogFilter) => void; onCancel: () => void }) {
  const [name, setName] = useState("");
  const [touched, setTouched] = useState(false);
  const client = useQueryClient();
  const save = useMutation<SavedLogFilter, BackendError, string>({
    mutationFn: (n) => {
      // A relative range is saved as such (without the absolute `from` it produced today).
      const filter = { ...applied.filter };
      if (applied.lastSeconds !== null) delete filter.from;
      return backend.saveLogFilter(instance.id, { name: n, filter, last_seconds: applied.lastSeconds ?? undefined });
    },
    onSuccess: async (saved) => {
      await client.invalidateQueries({ queryKey: explorerKeys.savedFilters(instance.id) });
      onDone(saved);
    },
  });
  const trimmed = name.trim();
  const clientError = trimmed === "" ? "A name is required." : Array.from(trimmed).length > NAME_MAX ? `At most ${NAME_MAX.toString()} characters.` : null;
  const serverNameError = save.error?.is("conflict")
    ? save.error.message
    : save.error?.fields.find((f) => f.field === "name")?.message;
  const otherError = save.error && !serverNameError ? save.error : null;

  const submit = (e: SubmitEvent) => {
    e.preventDefault();
    setTouched(true);
    if (clientError) return;
    save.mutate(trimmed);
  };

  return (
    <form className="form" onSubmit={submit} noValidate>
      <Field label="Name" error={(touched ? clientError : null) ?? serverNameError} hint={`Unique on ${instance.name}; up to ${NAME_MAX.toString()} characters.`}>
        {({ id, describedBy, invalid }) => (
          <input
            id={id}
            value={name}
            maxLength={NAME_MAX * 2}
            aria-describedby={describedBy}
            aria-invalid={invalid || undefined}
            data-autofocus
            data-testid="saved-filter-name"
            onChange={(e) => {
              setName(e.target.value);
              if (save.isError) save.reset();
            }}
          />
        )}
      </Field>
      <p className="muted">Saves: {describeFilter(applied.filter, applied.lastSeconds)}</p>
      <FormError error={otherError} />
      <DialogActions
        submitLabel="Save filter"
        pendingLabel="Saving…"
        pending={save.isPending}
        onCancel={onCancel}
        testId="saved-filter-confirm"
      />
    </form>
  );
}

interface LogSavedFiltersProps {
  instance: Instance;
  /** The filter in force; null while the draft has errors (nothing to save). */
  applied: AppliedFilter | null;
  /** The filter as typed: a saved filter shows as picked only while it is the one in force. */
  draft: FilterDraft;
  onApply: (saved: SavedLogFilter) => void;
}

/** Saved filters of the instance (in the console's database): pick one to apply it, save the current one, delete. */
export function LogSavedFilters({ instance, applied, draft, onApply }: LogSavedFiltersProps) {
  const saved = useSavedLogFilters(instance.id);
  const [selectedId, setSelectedId] = useState("");
  const [saving, setSaving] = useState(false);
  const [deleting, setDeleting] = useState<SavedLogFilter | null>(null);
  const client = useQueryClient();
  const toast = useToast();
  const remove = useMutation<null, BackendError, SavedLogFilter>({
    mutationFn: (f) => backend.deleteSavedLogFilter(instance.id, f.id),
    onSuccess: async (_, f) => {
      setDeleting(null);
      setSelectedId("");
      toast.success(`Deleted the saved filter “${f.name}”.`);
      await client.invalidateQueries({ queryKey: explorerKeys.savedFilters(instance.id) });
    },
    onError: async (error) => {
      if (error.is("not_found")) await client.invalidateQueries({ queryKey: explorerKeys.savedFilters(instance.id) });
    },
  });
  const list = saved.data ?? [];
  const picked = list.find((f) => f.id === selectedId) ?? null;
  // One that cannot be applied stays picked (to be deleted); another, while the filter is still its own.
  const selected = picked && (picked.problem || JSON.stringify(draftFromSaved(picked)) === JSON.stringify(draft)) ? picked : null;

  return (
    <div className="logs-saved" data-testid="logs-saved-filters">
      <label className="visually-hidden" htmlFor="logs-saved-select">
        Saved filters
      </label>
      <select
        id="logs-saved-select"
        value={selected ? selected.id : ""}
        disabled={saved.isPending}
        data-testid="saved-filter-select"
        onChange={(e) => {
          setSelectedId(e.target.value);
          const f = list.find((x) => x.id === e.target.value);
          if (f && !f.problem) onApply(f);
        }}
      >
        <option value="">{saved.isPending ? "Saved filters…" : list.length === 0 ? "No saved filters" : `Saved filters (${list.length.toString()})`}</option>
        {list.map((f) => (
          <option key={f.id} value={f.id} title={f.problem ?? describeFilter(f.filter, f.last_seconds)}>
            {f.problem ? `${f.name} (cannot be applied)` : f.name}
          </option>
        ))}
      </select>
      {selected && (
        <>
          <button type="button" onClick={() => onApply(selected)} disabled={Boolean(selected.problem)} data-testid="saved-filter-apply" title="Apply it again (a relative range restarts from now)">
            Apply
          </button>
          <button
            type="button"
            className="danger-quiet"
            onClick={() => {
              remove.reset();
              setDeleting(selected);
            }}
            data-testid="saved-filter-delete"
          >
            Delete
          </button>
        </>
      )}
      <button type="button" onClick={() => setSaving(true)} disabled={!applied} title={applied ? undefined : "Fix the filter first"} data-testid="saved-filter-save">
        Save filter as…
      </button>
      {saved.isError && <ErrorText error={saved.error} />}
      {selected?.problem && (
        <span className="field-error" role="alert">
          {selected.problem}
        </span>
      )}
      {saving && applied && (
        <Dialog title="Save the current filter" onClose={() => setSaving(false)}>
          <SaveFilterForm
            instance={instance}
            applied={applied}
            onCancel={() => setSaving(false)}
            onDone={(f) => {
              setSaving(false);
              setSelectedId(f.id);
              toast.success(`Saved the filter “${f.name}”.`);
            }}
          />
        </Dialog>
      )}
      {deleting && (
        <ConfirmDialog
          title={`Delete the saved filter “${deleting.name}”?`}
          confirmLabel="Delete filter"
          onConfirm={() => remove.mutate(deleting)}
          onCancel={() => setDeleting(null)}
          pending={remove.isPending}
          error={remove.error}
        >
          <p>
            It filtered: {deleting.problem ? <em>unreadable ({deleting.problem})</em> : describeFilter(deleting.filter, deleting.last_seconds)}. The
            records themselves are not touched.
          </p>
        </ConfirmDialog>
      )}
    </div>
  );
}
