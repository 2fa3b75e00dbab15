import { useState } from "react";
import type { ReactNode, SubmitEvent } from "react";

import type { BackendError } from "../../lib/backend";
import { Dialog } from "./Dialog";
import { ErrorText } from "./ErrorText";
import { Field } from "./Field";
import { DialogActions } from "./DialogActions";

interface ReasonDialogProps {
  title: string;
  confirmLabel: string;
  children?: ReactNode;
  onConfirm: (reason: string) => void;
  onCancel: () => void;
  pending: boolean;
  error: BackendError | null;
  /** The reason may stay empty (the backend then records a default one). */
  optional?: boolean;
  /** A red confirm button, for actions that take something away. */
  danger?: boolean;
}

/** Asks for the reason of an action (required unless `optional`), then confirms it. */
export function ReasonDialog({ title, confirmLabel, children, onConfirm, onCancel, pending, error, optional = false, danger = true }: ReasonDialogProps) {
  const [reason, setReason] = useState("");
  const [missing, setMissing] = useState(false);
  const fieldError = missing ? "Enter a reason: it is recorded and shown to whoever reads this subscription." : error?.fields.find((f) => f.field === "reason")?.message;

  function onSubmit(e: SubmitEvent) {
    e.preventDefault();
    if (!optional && !reason.trim()) {
      setMissing(true);
      return;
    }
    onConfirm(reason.trim());
  }

  return (
    <Dialog title={title} onClose={onCancel}>
      <form className="form" onSubmit={onSubmit} noValidate>
        {children}
        <Field label={optional ? "Reason (optional)" : "Reason"} error={fieldError}>
          {({ id, describedBy, invalid }) => (
            <input
              id={id}
              data-testid="action-reason"
              value={reason}
              maxLength={500}
              onChange={(e) => {
                setReason(e.target.value);
                setMissing(false);
              }}
              aria-describedby={describedBy}
              aria-invalid={invalid}
              data-autofocus
              autoComplete="off"
            />
          )}
        </Field>
        {error && !fieldError && (
          <p className="form-error" role="alert">
            <ErrorText error={error} />
          </p>
        )}
        <DialogActions
          submitLabel={confirmLabel}
          pendingLabel="Working…"
          pending={pending}
          onCancel={onCancel}
          cancelLabel="Back"
          tone={danger ? "danger" : "primary"}
          testId="confirm-ok"
        />
      </form>
    </Dialog>
  );
}
