import type { ReactNode } from "react";

import type { BackendError } from "../../lib/backend";
import { Dialog } from "./Dialog";
import { FormError } from "./FormError";
import { DialogActions } from "./DialogActions";

interface ConfirmDialogProps {
  title: string;
  children?: ReactNode;
  confirmLabel: string;
  onConfirm: () => void;
  onCancel: () => void;
  pending?: boolean;
  error?: BackendError | null;
}

/** Asks before a destructive action. Cancel has the focus, so Enter alone never destroys. */
export function ConfirmDialog({ title, children, confirmLabel, onConfirm, onCancel, pending = false, error }: ConfirmDialogProps) {
  return (
    <Dialog title={title} onClose={onCancel}>
      {children}
      <FormError error={error} />
      <DialogActions
        submitLabel={confirmLabel}
        pendingLabel="Working…"
        pending={pending}
        onCancel={onCancel}
        cancelFirst
        tone="danger"
        onSubmit={onConfirm}
        testId="confirm-ok"
      />
    </Dialog>
  );
}
