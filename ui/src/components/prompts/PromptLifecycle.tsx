import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import type { SubmitEvent } from "react";

import type { Instance } from "../../bindings/Instance";
import type { PromptApi } from "../../bindings/PromptApi";
import type { PromptApiAction } from "../../bindings/PromptApiAction";
import * as backend from "../../lib/backend";
import { absoluteTime } from "../../lib/format";
import { keys } from "../../lib/queries";
import { ConfirmDialog } from "../common/ConfirmDialog";
import { Dialog } from "../common/Dialog";
import { ErrorText } from "../common/ErrorText";
import { Field } from "../common/Field";
import { ProdNotice } from "../shell/ProdNotice";
import { useToast } from "../common/Toaster";
import { DialogActions } from "../common/DialogActions";

interface PromptLifecycleProps {
  instance: Instance;
  api: PromptApi;
  onChanged: (api: PromptApi) => Promise<void>;
}

/** Tomorrow as `yyyy-mm-dd`, local time: the earliest sunset the date field offers. */
function tomorrow(): string {
  const d = new Date();
  d.setDate(d.getDate() + 1);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

const DONE: Record<PromptApiAction["action"], string> = {
  publish: "Published",
  deprecate: "Deprecated",
  retire: "Retired",
  rollback: "Rolled back",
};

/** Publish, deprecate (with a sunset date) and retire (irreversible), as the API's status allows. */
export function PromptLifecycle({ instance, api, onChanged }: PromptLifecycleProps) {
  const client = useQueryClient();
  const toast = useToast();
  const [dialog, setDialog] = useState<"deprecate" | "retire" | null>(null);
  const [sunset, setSunset] = useState(tomorrow);
  const [sunsetError, setSunsetError] = useState<string | undefined>();

  const change = useMutation({
    mutationFn: (action: PromptApiAction) => backend.changePromptApiLifecycle(instance.id, api.id, action, api.version),
    onSuccess: async (saved, action) => {
      setDialog(null);
      toast.success(`${DONE[action.action]} “${saved.name}”.`);
      await onChanged(saved);
    },
    onError: async (error) => {
      if (!dialog) toast.error(`Could not change “${api.name}”`, error);
      setSunsetError(error.fields.find((f) => f.field === "sunset_at")?.message);
      if (error.code === "precondition_failed" || error.code === "conflict") await client.invalidateQueries({ queryKey: keys.promptApi(instance.id, api.id) });
    },
  });
  const open = (which: "deprecate" | "retire") => {
    change.reset();
    setSunsetError(undefined);
    setDialog(which);
  };

  function onDeprecate(e: SubmitEvent) {
    e.preventDefault();
    // The end of the chosen day, local time.
    const at = new Date(`${sunset}T23:59:59`);
    if (!sunset || Number.isNaN(at.getTime())) {
      setSunsetError("Enter a date.");
      return;
    }
    if (at.getTime() <= Date.now()) {
      setSunsetError("The sunset must be in the future.");
      return;
    }
    change.mutate({ action: "deprecate", sunset_at: at.toISOString() });
  }

  if (api.status === "retired") return <span className="muted">Retired: calls are answered 410 Gone.</span>;
  return (
    <div className="lifecycle">
      {api.status === "deprecated" && api.sunset_at && (
        <span className="muted" data-testid="prompt-sunset">
          Sunset {absoluteTime(api.sunset_at)}
        </span>
      )}
      {api.status !== "published" && (
        <button type="button" className="primary" data-testid="publish-prompt-api" onClick={() => change.mutate({ action: "publish" })} disabled={change.isPending}>
          {api.status === "deprecated" ? "Publish again" : "Publish"}
        </button>
      )}
      {api.status === "published" && (
        <button type="button" data-testid="deprecate-prompt-api" onClick={() => open("deprecate")}>
          Deprecate…
        </button>
      )}
      <button type="button" className="danger-quiet" data-testid="retire-prompt-api" onClick={() => open("retire")}>
        Retire…
      </button>

      {dialog === "deprecate" && (
        <Dialog title={`Deprecate “${api.name}”`} onClose={() => setDialog(null)}>
          <form className="form" onSubmit={onDeprecate} noValidate>
            <ProdNotice instance={instance} />
            <p>
              Calls keep working until the sunset, answered with <code>Deprecation</code> and <code>Sunset</code> headers; from then on they are
              refused with 410 Gone.
            </p>
            <Field label="Sunset (end of that day, local time)" error={sunsetError}>
              {({ id, describedBy, invalid }) => (
                <input
                  id={id}
                  type="date"
                  data-testid="prompt-sunset-date"
                  min={tomorrow()}
                  value={sunset}
                  onChange={(e) => {
                    setSunset(e.target.value);
                    setSunsetError(undefined);
                  }}
                  aria-describedby={describedBy}
                  aria-invalid={invalid}
                  data-autofocus
                />
              )}
            </Field>
            {change.error && !sunsetError && (
              <p className="form-error" role="alert">
                <ErrorText error={change.error} />
              </p>
            )}
            <DialogActions
              submitLabel="Deprecate"
              pendingLabel="Working…"
              pending={change.isPending}
              onCancel={() => setDialog(null)}
              testId="confirm-deprecate"
            />
          </form>
        </Dialog>
      )}
      {dialog === "retire" && (
        <ConfirmDialog
          title={`Retire “${api.name}”?`}
          confirmLabel="Retire for good"
          onConfirm={() => change.mutate({ action: "retire" })}
          onCancel={() => setDialog(null)}
          pending={change.isPending}
          error={change.error}
        >
          <ProdNotice instance={instance} />
          <p>
            <strong>This cannot be undone.</strong> Every call of <code>/apis/{api.slug}</code> is answered 410 Gone from now on, the API
            takes no new versions and cannot be published again.
          </p>
        </ConfirmDialog>
      )}
    </div>
  );
}
