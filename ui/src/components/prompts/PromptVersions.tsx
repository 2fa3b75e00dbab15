import { useMutation } from "@tanstack/react-query";
import { useState } from "react";

import type { DiffLine } from "../../bindings/DiffLine";
import type { Instance } from "../../bindings/Instance";
import type { PromptApi } from "../../bindings/PromptApi";
import type { PromptApiVersion } from "../../bindings/PromptApiVersion";
import type { PromptDefinition } from "../../bindings/PromptDefinition";
import * as backend from "../../lib/backend";
import { absoluteTime } from "../../lib/format";
import { usePromptApiVersions, usePromptDiff } from "../../lib/queries";
import { useNow } from "../../lib/useNow";
import { ConfirmDialog } from "../common/ConfirmDialog";
import { ErrorState } from "../common/ErrorState";
import { ProdNotice } from "../shell/ProdNotice";
import { useToast } from "../common/Toaster";
import { When } from "../common/When";

/** The editor's unsaved definition, as a pseudo-version to diff against. */
const EDITING = 0;

const SIGNS: Record<DiffLine["op"], string> = { equal: " ", insert: "+", delete: "−" };

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

function DiffView({ lines }: { lines: DiffLine[] }) {
  const changes = lines.filter((l) => l.op !== "equal").length;
  return (
    <>
      <p className="muted" data-testid="diff-summary">
        {changes === 0 ? "No difference." : `${plural(lines.filter((l) => l.op === "delete").length, "line")} removed, ${lines.filter((l) => l.op === "insert").length} added.`}
      </p>
      <div className="diff" data-testid="prompt-diff" role="table" aria-label="Line diff">
        {lines.map((l, i) => (
          <div key={i} className={`diff-line diff-${l.op}`} data-testid="diff-line" data-op={l.op} role="row">
            <span className="diff-num" role="cell">
              {l.old_line ?? ""}
            </span>
            <span className="diff-num" role="cell">
              {l.new_line ?? ""}
            </span>
            <span className="diff-sign" role="cell" aria-label={l.op === "equal" ? "unchanged" : l.op === "insert" ? "added" : "removed"}>
              {SIGNS[l.op]}
            </span>
            <span className="diff-text" role="cell">
              {l.text}
            </span>
          </div>
        ))}
      </div>
    </>
  );
}

interface PromptVersionsProps {
  instance: Instance;
  api: PromptApi;
  /** The editor's definition when it differs from the one served. */
  editing: PromptDefinition | null;
  onRolledBack: (api: PromptApi) => Promise<void>;
}

/** Every version of the API, any two compared line by line, and a rollback to an earlier one. */
export function PromptVersions({ instance, api, editing, onRolledBack }: PromptVersionsProps) {
  const versions = usePromptApiVersions(instance.id, api.id);
  const toast = useToast();
  const now = useNow(10_000);
  const list = versions.data ?? [];
  // By default: the version before the newest, against the newest.
  const [from, setFrom] = useState<number | null>(null);
  const [to, setTo] = useState<number | null>(null);
  const [rollingBack, setRollingBack] = useState<PromptApiVersion | null>(null);
  const newest = list[0]?.number ?? null;
  const older = list[1]?.number ?? newest;
  const a = from ?? older;
  const b = to ?? newest;
  const definitionOf = (n: number | null) => (n === EDITING ? editing : (list.find((v) => v.number === n)?.definition ?? null));
  const pairA = definitionOf(a);
  const pairB = definitionOf(b);
  const diff = usePromptDiff(pairA && pairB ? [pairA, pairB] : null);

  const rollback = useMutation({
    mutationFn: (v: PromptApiVersion) => backend.changePromptApiLifecycle(instance.id, api.id, { action: "rollback", version: v.number }, api.version),
    onSuccess: async (saved) => {
      setRollingBack(null);
      toast.success(`Version ${saved.current_version} of “${saved.name}” is current again; the editor shows it.`);
      await onRolledBack(saved);
    },
  });

  if (versions.isPending) return <p className="muted">Loading the versions…</p>;
  if (versions.isError) return <ErrorState what="the versions" error={versions.error} onRetry={() => void versions.refetch()} />;

  const label = (n: number | null) => (n === EDITING ? "the editor (unsaved)" : `version ${n}`);
  return (
    <section className="detail-section" data-testid="prompt-versions">
      <table className="table">
        <thead>
          <tr>
            <th scope="col">Version</th>
            <th scope="col">Created</th>
            <th scope="col">By</th>
            <th scope="col">Model</th>
            <th scope="col" className="center">
              Compare from
            </th>
            <th scope="col" className="center">
              to
            </th>
            <th scope="col" className="actions">
              <span className="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {editing && (
            <tr data-testid="version-row-editing" className="row-editing">
              <td>
                <em>Editor (unsaved)</em>
              </td>
              <td colSpan={3} className="muted">
                What the editor holds now
              </td>
              <td className="center">
                <input type="radio" name="diff-from" aria-label="Compare from the editor" checked={a === EDITING} onChange={() => setFrom(EDITING)} />
              </td>
              <td className="center">
                <input type="radio" name="diff-to" aria-label="Compare to the editor" data-testid="diff-to-editing" checked={b === EDITING} onChange={() => setTo(EDITING)} />
              </td>
              <td />
            </tr>
          )}
          {list.map((v) => (
            <tr key={v.number} data-testid={`version-row-${v.number}`} className={v.number === api.current_version ? "row-current" : undefined}>
              <td>
                <strong>v{v.number}</strong> {v.number === api.current_version && <span className="badge badge-ok">current</span>}
              </td>
              <td title={absoluteTime(v.created_at)}>
                <When iso={v.created_at} now={now} />
              </td>
              <td className="mono">{v.created_by}</td>
              <td className="mono cell-wrap">{v.definition.models.join(" → ")}</td>
              <td className="center">
                <input type="radio" name="diff-from" aria-label={`Compare from version ${v.number}`} data-testid={`diff-from-${v.number}`} checked={a === v.number} onChange={() => setFrom(v.number)} />
              </td>
              <td className="center">
                <input type="radio" name="diff-to" aria-label={`Compare to version ${v.number}`} data-testid={`diff-to-${v.number}`} checked={b === v.number} onChange={() => setTo(v.number)} />
              </td>
              <td className="actions">
                {v.number !== api.current_version && api.status !== "retired" && (
                  <button
                    type="button"
                    className="link-button"
                    data-testid={`rollback-${v.number}`}
                    onClick={() => {
                      rollback.reset();
                      setRollingBack(v);
                    }}
                  >
                    Make current
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>

      <h2 className="diff-title">
        Changes from {label(a)} to {label(b)}
      </h2>
      {list.length < 2 && !editing && <p className="muted">Only one version so far: save a change to compare.</p>}
      {diff.isError && <ErrorState what="the diff" error={diff.error} onRetry={() => void diff.refetch()} />}
      {diff.data && <DiffView lines={diff.data} />}

      {rollingBack && (
        <ConfirmDialog
          title={`Roll back “${api.name}” to version ${rollingBack.number}?`}
          confirmLabel={`Make version ${rollingBack.number} current`}
          onConfirm={() => rollback.mutate(rollingBack)}
          onCancel={() => setRollingBack(null)}
          pending={rollback.isPending}
          error={rollback.error}
        >
          <ProdNotice instance={instance} />
          <p>
            Version {rollingBack.number} becomes the current one instead of version {api.current_version}
            {api.status === "published" || api.status === "deprecated" ? ": calls get it from now on" : ""}. No version is deleted: you can
            roll forward again. The editor will show version {rollingBack.number}{editing ? ", replacing its unsaved changes" : ""}.
          </p>
        </ConfirmDialog>
      )}
    </section>
  );
}
