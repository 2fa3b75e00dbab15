import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import type { SubmitEvent } from "react";

import type { Instance } from "../../bindings/Instance";
import type { LogCacheCheck } from "../../bindings/LogCacheCheck";
import type { LogCacheInfo } from "../../bindings/LogCacheInfo";
import * as backend from "../../lib/backend";
import type { BackendError } from "../../lib/backend";
import { count } from "../../lib/format";
import { explorerKeys, useInstances, useLogCaches, useLogSyncEvents } from "../../lib/queries";
import { useNow } from "../../lib/useNow";
import { ConfirmDialog } from "../common/ConfirmDialog";
import { Dialog } from "../common/Dialog";
import { ErrorState } from "../common/ErrorState";
import { ErrorText } from "../common/ErrorText";
import { Field } from "../common/Field";
import { bytes } from "./LogExport";
import { isOffline, useLogSyncProgress } from "./LogSyncStatus";
import { useToast } from "../common/Toaster";
import { When } from "../common/When";
import { DialogActions } from "../common/DialogActions";

const DAYS_MAX = 3650;

/** Whole days 1–3650, or the problem. */
function checkDays(text: string): number | string {
  const t = text.trim();
  if (!/^\d+$/.test(t)) return "Whole days, e.g. 30.";
  const n = Number(t);
  if (n < 1 || n > DAYS_MAX) return `1 to ${DAYS_MAX.toString()} days.`;
  return n;
}

function shortDate(iso: string | undefined): string {
  return iso ? new Date(iso).toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" }) : "—";
}

function RetentionDialog({ instance, info, onClose }: { instance: Instance; info: LogCacheInfo; onClose: () => void }) {
  const [keepAll, setKeepAll] = useState(info.retention_days === undefined);
  const [days, setDays] = useState(String(info.retention_days ?? 90));
  const [touched, setTouched] = useState(false);
  const client = useQueryClient();
  const toast = useToast();
  const save = useMutation<LogCacheInfo, BackendError, number | null>({
    mutationFn: (d) => backend.setLogRetention(instance.id, d),
    onSuccess: async (next) => {
      toast.success(next.retention_days ? `${instance.name} keeps ${next.retention_days.toString()} days of records.` : `${instance.name} keeps every record.`);
      await client.invalidateQueries({ queryKey: explorerKeys.caches });
      await client.invalidateQueries({ queryKey: explorerKeys.cacheInfo(instance.id) });
      onClose();
    },
  });
  const checked = keepAll ? null : checkDays(days);
  const error = (touched && typeof checked === "string" ? checked : undefined) ?? save.error?.fields.find((f) => f.field === "retention_days")?.message;
  const submit = (e: SubmitEvent) => {
    e.preventDefault();
    setTouched(true);
    if (typeof checked === "string") return;
    save.mutate(checked);
  };
  return (
    <Dialog title={`Retention of ${instance.name}'s cache`} onClose={onClose}>
      <form className="form" onSubmit={submit} noValidate>
        <label className="checkbox">
          <input type="checkbox" checked={keepAll} onChange={(e) => setKeepAll(e.target.checked)} data-testid="retention-keep-all" />
          Keep every record
        </label>
        {!keepAll && (
          <Field label="Keep records of the last (days)" error={error} hint="Older records are purged now and after each sync. The gateway keeps its own log.">
            {({ id, describedBy, invalid }) => (
              <input
                id={id}
                className="num-input"
                inputMode="numeric"
                value={days}
                aria-describedby={describedBy}
                aria-invalid={invalid || undefined}
                data-autofocus
                data-testid="retention-days"
                onChange={(e) => setDays(e.target.value)}
              />
            )}
          </Field>
        )}
        {save.error && !error && (
          <p className="form-error" role="alert">
            <ErrorText error={save.error} />
          </p>
        )}
        <DialogActions
          submitLabel="Save"
          pendingLabel="Saving…"
          pending={save.isPending}
          onCancel={onClose}
          testId="retention-save"
        />
      </form>
    </Dialog>
  );
}

function PurgeDialog({ instance, onClose }: { instance: Instance; onClose: () => void }) {
  const [days, setDays] = useState("30");
  const [touched, setTouched] = useState(false);
  const client = useQueryClient();
  const toast = useToast();
  const purge = useMutation<number, BackendError, number>({
    mutationFn: (d) => backend.purgeLogCache(instance.id, d),
    onSuccess: async (n) => {
      toast.success(`Purged ${count(n)} record(s) from ${instance.name}'s cache. Vacuum to give the space back.`);
      await client.invalidateQueries({ queryKey: explorerKeys.caches });
      await client.invalidateQueries({ queryKey: explorerKeys.all(instance.id) });
      onClose();
    },
  });
  const checked = checkDays(days);
  const error = touched && typeof checked === "string" ? checked : undefined;
  return (
    <ConfirmDialog
      title={`Purge old records from ${instance.name}'s cache?`}
      confirmLabel="Purge"
      onCancel={onClose}
      pending={purge.isPending}
      error={purge.error}
      onConfirm={() => {
        setTouched(true);
        if (typeof checked === "number") purge.mutate(checked);
      }}
    >
      <Field label="Older than (days)" error={error} hint="Deleted from this console's cache only; a rebuild fetches them again while the gateway keeps them.">
        {({ id, describedBy, invalid }) => (
          <input
            id={id}
            className="num-input"
            inputMode="numeric"
            value={days}
            aria-describedby={describedBy}
            aria-invalid={invalid || undefined}
            data-testid="purge-days"
            onChange={(e) => setDays(e.target.value)}
          />
        )}
      </Field>
    </ConfirmDialog>
  );
}

function SyncEvents({ instance }: { instance: Instance }) {
  const events = useLogSyncEvents(instance.id);
  const now = useNow(10_000);
  if (events.isPending) return <p className="muted">Loading the sync events…</p>;
  if (events.isError) return <ErrorState what="the sync events" error={events.error} onRetry={() => void events.refetch()} />;
  if (events.data.length === 0)
    return (
      <p className="muted" data-testid="sync-events-empty">
        Nothing to report: no duplicates, conflicts, gaps or rebuilds so far.
      </p>
    );
  return (
    <table className="table" data-testid="sync-events">
      <thead>
        <tr>
          <th scope="col">When</th>
          <th scope="col">Event</th>
          <th scope="col">Seq</th>
          <th scope="col">What happened</th>
        </tr>
      </thead>
      <tbody>
        {events.data.map((e, i) => (
          <tr key={`${e.at}-${i.toString()}`}>
            <td className="nowrap">
              <When iso={e.at} now={now} />
            </td>
            <td>
              <code className="action">{e.kind}</code>
            </td>
            <td className="num">{e.seq ?? "—"}</td>
            <td className="cell-wrap">{e.message}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

type Pending = { kind: "retention" | "purge" | "rebuild"; instance: Instance; info: LogCacheInfo } | null;

function CacheRow({
  instance,
  info,
  now,
  selected,
  onSelect,
  onAsk,
  onChecked,
}: {
  instance: Instance;
  info: LogCacheInfo;
  now: number;
  selected: boolean;
  onSelect: () => void;
  onAsk: (p: Pending) => void;
  onChecked: (check: LogCacheCheck) => void;
}) {
  const client = useQueryClient();
  const toast = useToast();
  const progress = useLogSyncProgress(instance.id);
  const syncing = info.syncing || progress?.state === "running";
  const vacuum = useMutation({
    mutationFn: () => backend.vacuumLogCache(instance.id),
    onSuccess: async (next) => {
      toast.success(`Vacuumed ${instance.name}'s cache: ${bytes(info.bytes)} → ${bytes(next.bytes)}.`);
      await client.invalidateQueries({ queryKey: explorerKeys.caches });
    },
    onError: (e) => toast.error(`Could not vacuum ${instance.name}'s cache`, e),
  });
  const check = useMutation({
    mutationFn: () => backend.checkLogCache(instance.id),
    onSuccess: async (result) => {
      onChecked(result);
      await client.invalidateQueries({ queryKey: explorerKeys.caches });
    },
    onError: (e) => toast.error(`Could not check ${instance.name}'s cache`, e),
  });
  return (
    <tr className={selected ? "row-current" : undefined} data-testid={`cache-row-${instance.name}`}>
      <td>
        <button type="button" className="link-button" onClick={onSelect} title="Show its sync events">
          <strong>{instance.name}</strong>
        </button>
        {isOffline(info) && <span className="badge badge-warn logs-badge-gap">offline</span>}
        {syncing && <span className="badge badge-muted logs-badge-gap">syncing{progress?.state === "running" ? ` ${count(progress.synced)}` : ""}</span>}
      </td>
      <td className="num" data-testid="cache-records">
        {count(info.records)}
      </td>
      <td className="num" data-testid="cache-size">
        {bytes(info.bytes)}
      </td>
      <td className="nowrap">{info.oldest_at ? `${shortDate(info.oldest_at)} – ${shortDate(info.newest_at)}` : <span className="muted">empty</span>}</td>
      <td className="nowrap" data-testid="cache-last-sync">
        {info.last_sync_at ? <When iso={info.last_sync_at} now={now} /> : <span className="muted">never</span>}
        {info.last_error && (
          <div className="field-error" title={info.last_error.message}>
            last attempt failed: {info.last_error.code}
          </div>
        )}
      </td>
      <td className="nowrap">
        <button type="button" className="link-button" onClick={() => onAsk({ kind: "retention", instance, info })} data-testid={`cache-retention-${instance.name}`}>
          {info.retention_days ? `${info.retention_days.toString()} days` : "keep all"}
        </button>
      </td>
      <td className="actions">
        <button type="button" onClick={() => onAsk({ kind: "purge", instance, info })} data-testid={`cache-purge-${instance.name}`}>
          Purge…
        </button>
        <button type="button" onClick={() => vacuum.mutate()} disabled={vacuum.isPending} data-testid={`cache-vacuum-${instance.name}`}>
          {vacuum.isPending ? "Vacuuming…" : "Vacuum"}
        </button>
        <button type="button" onClick={() => check.mutate()} disabled={check.isPending} data-testid={`cache-check-${instance.name}`}>
          {check.isPending ? "Checking…" : "Check"}
        </button>
        <button type="button" className="danger-quiet" onClick={() => onAsk({ kind: "rebuild", instance, info })} data-testid={`cache-rebuild-${instance.name}`}>
          Rebuild…
        </button>
      </td>
    </tr>
  );
}

/** Every instance's cache: records, size, span, last sync, retention; purge, vacuum, check, rebuild; the selected one's sync events. */
export function LogCacheManager({ current }: { current: Instance }) {
  const caches = useLogCaches();
  const instances = useInstances();
  const now = useNow(10_000);
  const [selectedId, setSelectedId] = useState(current.id);
  const [pending, setPending] = useState<Pending>(null);
  const [checkResult, setCheckResult] = useState<{ instance: Instance; result: LogCacheCheck } | null>(null);
  const client = useQueryClient();
  const toast = useToast();
  const rebuild = useMutation<LogCacheInfo, BackendError, Instance>({
    mutationFn: (i) => backend.rebuildLogCache(i.id),
    onSuccess: async (_, i) => {
      setPending(null);
      toast.info(`${i.name}'s cache was emptied; it is syncing again from the start of the gateway's log.`);
      await client.invalidateQueries({ queryKey: explorerKeys.caches });
      await client.invalidateQueries({ queryKey: explorerKeys.all(i.id) });
      await client.invalidateQueries({ queryKey: explorerKeys.syncEvents(i.id) });
    },
  });
  const byId = new Map((instances.data ?? []).map((i) => [i.id, i]));
  const rows = (caches.data ?? []).flatMap((info) => {
    const instance = byId.get(info.instance_id);
    return instance ? [{ instance, info }] : [];
  });
  const selected = byId.get(selectedId) ?? current;
  const totalBytes = rows.reduce((sum, r) => sum + r.info.bytes, 0);

  return (
    <div className="logs-cache" data-testid="logs-cache">
      <p className="muted">
        Each instance's call log is copied into a file of this console's own, so that the explorer and the charts work offline.{" "}
        {rows.length > 0 && <>Together they take {bytes(totalBytes)}.</>}
      </p>
      {caches.isPending && <p className="muted">Reading the caches…</p>}
      {caches.isError && !caches.data && <ErrorState what="the caches" error={caches.error} onRetry={() => void caches.refetch()} />}
      {rows.length > 0 && (
        <table className="table" data-testid="cache-table">
          <thead>
            <tr>
              <th scope="col">Instance</th>
              <th scope="col" className="num">
                Records
              </th>
              <th scope="col" className="num">
                On disk
              </th>
              <th scope="col">Time span</th>
              <th scope="col">Last sync</th>
              <th scope="col">Retention</th>
              <th scope="col" className="actions">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {rows.map(({ instance, info }) => (
              <CacheRow
                key={instance.id}
                instance={instance}
                info={info}
                now={now}
                selected={instance.id === selected.id}
                onSelect={() => setSelectedId(instance.id)}
                onAsk={(p) => {
                  rebuild.reset();
                  setPending(p);
                }}
                onChecked={(result) => setCheckResult({ instance, result })}
              />
            ))}
          </tbody>
        </table>
      )}
      {checkResult && (
        <p className={checkResult.result.ok ? "logs-check logs-check-ok" : "logs-check form-error"} role="status" data-testid="cache-check-result">
          {checkResult.result.ok ? (
            <>Integrity check of {checkResult.instance.name}'s cache: ok — no damage found.</>
          ) : (
            <>
              {checkResult.instance.name}'s cache was damaged ({checkResult.result.detail}); it was set aside and is being rebuilt from the gateway.
            </>
          )}{" "}
          <button type="button" className="link-button" onClick={() => setCheckResult(null)}>
            Dismiss
          </button>
        </p>
      )}
      <section className="detail-section">
        <h2>Sync events of {selected.name}</h2>
        <p className="muted">What the sync met and reported: duplicates, conflicts, out-of-order records, rebuilds and purges. Newest first.</p>
        <SyncEvents key={selected.id} instance={selected} />
      </section>

      {pending?.kind === "retention" && <RetentionDialog instance={pending.instance} info={pending.info} onClose={() => setPending(null)} />}
      {pending?.kind === "purge" && <PurgeDialog instance={pending.instance} onClose={() => setPending(null)} />}
      {pending?.kind === "rebuild" && (
        <ConfirmDialog
          title={`Rebuild ${pending.instance.name}'s cache?`}
          confirmLabel="Empty and rebuild"
          onConfirm={() => rebuild.mutate(pending.instance)}
          onCancel={() => setPending(null)}
          pending={rebuild.isPending}
          error={rebuild.error}
        >
          <p>
            The {count(pending.info.records)} cached records are deleted and synced again from the start of the gateway's log (progress shows in the
            table). Do this after the gateway was reset or replaced. Records the gateway no longer keeps cannot come back
            {isOffline(pending.info) && <strong> — and the instance is unreachable now, so the cache stays empty until it answers</strong>}.
          </p>
        </ConfirmDialog>
      )}
    </div>
  );
}
