import { useMutation, useQuery } from "@tanstack/react-query";
import { useState } from "react";
import type { SubmitEvent } from "react";

import type { Instance } from "../../bindings/Instance";
import type { LogExportFormat } from "../../bindings/LogExportFormat";
import type { LogExportSummary } from "../../bindings/LogExportSummary";
import * as backend from "../../lib/backend";
import type { BackendError } from "../../lib/backend";
import { count } from "../../lib/format";
import { explorerKeys } from "../../lib/queries";
import { Dialog } from "../common/Dialog";
import { Field } from "../common/Field";
import type { AppliedFilter } from "../../lib/logFilter";
import { describeFilter } from "./LogSavedFilters";
import { FormError } from "../common/FormError";
import { DialogActions } from "../common/DialogActions";

/** "1.2 MB". */
export function bytes(n: number): string {
  if (n < 1024) return `${n.toString()} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v).toString()} ${units[i] ?? "TB"}`;
}

/** `tollgate-logs-<instance>-<yyyymmdd-hhmm>.<ext>` in `dir`. */
function defaultPath(dir: string, instance: Instance, format: LogExportFormat, at: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  const stamp = `${at.getFullYear().toString()}${p(at.getMonth() + 1)}${p(at.getDate())}-${p(at.getHours())}${p(at.getMinutes())}`;
  const slug = instance.name.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "") || "instance";
  return `${dir.replace(/\/+$/, "")}/tollgate-logs-${slug}-${stamp}.${format}`;
}

function withExtension(path: string, format: LogExportFormat): string {
  return /\.(csv|json)$/i.test(path) ? path.replace(/\.(csv|json)$/i, `.${format}`) : path;
}

function checkPath(path: string): string | null {
  const t = path.trim();
  if (t === "") return "A file path is required.";
  if (!t.startsWith("/")) return "Give an absolute path, starting with /.";
  if (t.endsWith("/")) return "End the path with a file name.";
  return null;
}

interface LogExportProps {
  instance: Instance;
  applied: AppliedFilter;
  /** How many records the filter matches, when all of them are loaded (else null: unknown). */
  total: number | null;
  onClose: () => void;
}

type Stage = { kind: "form" } | { kind: "overwrite"; path: string } | { kind: "running"; path: string } | { kind: "done"; summary: LogExportSummary };

/**
 * Exports the records of the filter in force to a CSV or JSON file, with progress. The path is
 * typed (the app has no file dialog), checked by the backend, and an existing file is replaced
 * only after asking. The backend scrubs anything shaped like a credential.
 */
export function LogExport({ instance, applied, total, onClose }: LogExportProps) {
  const [format, setFormat] = useState<LogExportFormat>("csv");
  const [path, setPath] = useState<string | null>(null);
  const [touched, setTouched] = useState(false);
  const [stage, setStage] = useState<Stage>({ kind: "form" });
  const [written, setWritten] = useState(0);
  const [openedAt] = useState(() => new Date());
  const dir = useQuery({ queryKey: explorerKeys.exportDir, queryFn: backend.logExportDir, staleTime: Infinity });
  // Until the admin types, the path follows the default folder and the format.
  const shownPath = path ?? (dir.data ? defaultPath(dir.data, instance, format, openedAt) : "");

  const check = useMutation<unknown, BackendError, string>({
    mutationFn: async (p) => {
      const target = await backend.checkLogExportPath(p);
      if (target.exists) setStage({ kind: "overwrite", path: target.path });
      else run.mutate(target.path);
    },
  });
  const run = useMutation<LogExportSummary, BackendError, string>({
    mutationFn: (p) => {
      setWritten(0);
      setStage({ kind: "running", path: p });
      return backend.exportLogs(instance.id, applied.filter, format, p, setWritten);
    },
    onSuccess: (summary) => setStage({ kind: "done", summary }),
    onError: () => setStage({ kind: "form" }),
  });

  const clientError = checkPath(shownPath);
  const serverError = check.error ?? run.error;
  const pathError = (touched ? clientError : null) ?? serverError?.fields.find((f) => f.field === "path")?.message;
  const otherError = serverError && !serverError.fields.some((f) => f.field === "path") ? serverError : null;

  const submit = (e: SubmitEvent) => {
    e.preventDefault();
    setTouched(true);
    if (clientError) return;
    check.reset();
    run.reset();
    check.mutate(shownPath.trim());
  };

  return (
    <Dialog title={`Export records of ${instance.name}`} onClose={stage.kind === "running" ? () => undefined : onClose} wide>
      {stage.kind === "done" ? (
        <div data-testid="export-summary">
          <p>
            <strong data-testid="export-records">{count(stage.summary.records)}</strong> records written ({bytes(stage.summary.bytes)}) to
          </p>
          <p>
            <code data-testid="export-path">{stage.summary.path}</code>
          </p>
          <p className="muted">Keys, tokens and other credential-shaped text were scrubbed from the file.</p>
          <div className="dialog-actions">
            <button type="button" className="primary" onClick={onClose} data-autofocus data-testid="export-close">
              Close
            </button>
          </div>
        </div>
      ) : stage.kind === "running" ? (
        <div data-testid="export-running">
          <p>
            Writing <code>{stage.path}</code>…
          </p>
          <progress className="logs-export-progress" max={total ?? undefined} value={total ? Math.min(written, total) : undefined} aria-label="Export progress" />
          <p data-testid="export-written">
            {count(written)} {total !== null ? `of ${count(total)} ` : ""}records written
          </p>
        </div>
      ) : stage.kind === "overwrite" ? (
        <div>
          <p>
            <code>{stage.path}</code> exists already. Replace it with the export?
          </p>
          <div className="dialog-actions">
            <button type="button" onClick={() => setStage({ kind: "form" })} data-autofocus>
              Back
            </button>
            <button type="button" className="danger" onClick={() => run.mutate(stage.path)} data-testid="export-overwrite">
              Replace the file
            </button>
          </div>
        </div>
      ) : (
        <form className="form" onSubmit={submit} noValidate>
          <p className="muted">
            Filter: {describeFilter(applied.filter, applied.lastSeconds)} — {total !== null ? `${count(total)} records` : "all matching records"}, newest first, from the local cache.
          </p>
          <fieldset className="logs-export-format">
            <legend>Format</legend>
            {(["csv", "json"] as const).map((f) => (
              <label key={f} className="checkbox">
                <input
                  type="radio"
                  name="export-format"
                  value={f}
                  checked={format === f}
                  data-testid={`export-format-${f}`}
                  onChange={() => {
                    setFormat(f);
                    if (path !== null) setPath(withExtension(path, f));
                  }}
                />
                {f === "csv" ? "CSV (one row per record)" : "JSON (an array of records)"}
              </label>
            ))}
          </fieldset>
          <Field label="Save to" error={pathError} hint={dir.data === null ? "Type the absolute path of the file." : "An absolute path in a folder that exists."}>
            {({ id, describedBy, invalid }) => (
              <input
                id={id}
                className="mono"
                value={shownPath}
                spellCheck={false}
                aria-describedby={describedBy}
                aria-invalid={invalid || undefined}
                data-autofocus
                data-testid="export-path-input"
                onChange={(e) => {
                  setPath(e.target.value);
                  check.reset();
                }}
              />
            )}
          </Field>
          <FormError error={otherError} lead="Export failed:" />
          <DialogActions
            submitLabel="Export"
            pendingLabel="Checking…"
            pending={check.isPending}
            onCancel={onClose}
            testId="export-start"
          />
        </form>
      )}
    </Dialog>
  );
}
