import { useEffect, useRef, useState } from "react";

import type { Instance } from "../../bindings/Instance";
import type { PromptDefinition } from "../../bindings/PromptDefinition";
import type { PromptRunSummary } from "../../bindings/PromptRunSummary";
import * as backend from "../../lib/backend";
import { BackendError } from "../../lib/backend";
import { count } from "../../lib/format";
import { messagesByField } from "../../lib/prompt";
import { ErrorText } from "../common/ErrorText";

interface PromptRunPanelProps {
  instance: Instance;
  definition: PromptDefinition;
  /** The test values to send (empty ones left out). */
  values: Record<string, string>;
  /** Invalid fields of a refused run, for the editor and the test values to show. */
  onFieldErrors: (fields: Record<string, string>) => void;
}

type RunState =
  | { state: "idle" }
  | { state: "running"; runId: string }
  | { state: "done"; summary: PromptRunSummary; seconds: number }
  | { state: "cancelled" }
  | { state: "failed"; error: BackendError };

/** Runs the definition being edited on the instance with the test values; the answer streams in as it arrives. */
export function PromptRunPanel({ instance, definition, values, onFieldErrors }: PromptRunPanelProps) {
  const [run, setRun] = useState<RunState>({ state: "idle" });
  const [output, setOutput] = useState("");
  const current = useRef<string | null>(null);

  // Leaving the studio stops a run still streaming.
  useEffect(
    () => () => {
      if (current.current) void backend.cancelPromptRun(current.current);
    },
    [],
  );

  async function start() {
    const runId = crypto.randomUUID();
    current.current = runId;
    setOutput("");
    setRun({ state: "running", runId });
    const started = performance.now();
    try {
      const summary = await backend.runPrompt(instance.id, runId, { definition, variables: values }, (text) => {
        if (current.current === runId) setOutput((o) => o + text);
      });
      if (current.current === runId) setRun({ state: "done", summary, seconds: (performance.now() - started) / 1000 });
    } catch (raw: unknown) {
      if (current.current !== runId) return;
      const error = raw instanceof BackendError ? raw : new BackendError("ipc", String(raw));
      if (error.is("cancelled")) {
        setRun({ state: "cancelled" });
      } else {
        setRun({ state: "failed", error });
        if (error.fields.length > 0) onFieldErrors(messagesByField(error.fields));
      }
    } finally {
      if (current.current === runId) current.current = null;
    }
  }

  const running = run.state === "running";
  return (
    <section className="studio-panel" aria-labelledby="prompt-run-title">
      <div className="toolbar">
        <h2 id="prompt-run-title">Test run</h2>
        <span className="spacer" />
        {running ? (
          <button type="button" data-testid="cancel-prompt-run" onClick={() => void backend.cancelPromptRun(run.runId)}>
            Cancel
          </button>
        ) : null}
        <button type="button" className="primary" data-testid="run-prompt" onClick={() => void start()} disabled={running}>
          {running ? "Running…" : `Run on ${instance.name}`}
        </button>
      </div>
      <p className="muted">
        Runs what the editor holds (saved or not) with the test values, through the instance's providers. It is charged to no consumer.
      </p>
      {(output !== "" || running) && (
        <pre className={running ? "run-output run-output-streaming" : "run-output"} data-testid="run-output" aria-live="polite" aria-busy={running}>
          {output}
        </pre>
      )}
      {run.state === "done" && (
        <p className="run-summary" data-testid="run-summary">
          <strong data-testid="run-model">{run.summary.model}</strong> via {run.summary.provider_name} ·{" "}
          <span className="nowrap" data-testid="run-tokens">
            {count(run.summary.prompt_tokens)} prompt + {count(run.summary.completion_tokens)} completion tokens
          </span>
          {!run.summary.usage_reported && <span className="muted"> (counted by the gateway: the provider reported none)</span>} ·{" "}
          <span className="nowrap" data-testid="run-cost">
            {run.summary.cost} {run.summary.currency}
          </span>{" "}
          · {run.seconds.toFixed(1)} s
        </p>
      )}
      {run.state === "done" && run.summary.cut_short && (
        <p className="warning" role="alert">
          The provider broke the answer off before its end; what arrived is shown and priced.
        </p>
      )}
      {run.state === "cancelled" && (
        <p className="muted" data-testid="run-cancelled">
          Cancelled: the run was stopped and its stream closed.
        </p>
      )}
      {run.state === "failed" && (
        <p className="form-error" role="alert" data-testid="run-error">
          <ErrorText error={run.error} />
        </p>
      )}
    </section>
  );
}
