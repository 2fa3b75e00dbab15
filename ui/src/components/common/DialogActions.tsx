import type { ReactNode } from "react";

interface DialogActionsProps {
  /** What the main button does, and what it says while it works ("Saving…"). */
  submitLabel: string;
  pendingLabel: string;
  pending: boolean;
  /** Held back for another reason than work in progress (nothing to choose). */
  disabled?: boolean;
  onCancel: () => void;
  /** "Back" when the dialog was opened from another choice. */
  cancelLabel?: string;
  /** Focus Cancel first: for a confirmation, where a stray Enter must not act. */
  cancelFirst?: boolean;
  /** A destructive action is red. */
  tone?: "primary" | "danger";
  /** Outside a form the main button acts by this; inside one it submits the form. */
  onSubmit?: () => void;
  testId?: string;
  /** Controls on the left (e.g. "Test connection"). */
  children?: ReactNode;
}

/** The footer of a form or dialog: Cancel, then the main action, which says when it is at work. */
export function DialogActions({
  submitLabel,
  pendingLabel,
  pending,
  disabled = false,
  onCancel,
  cancelLabel = "Cancel",
  cancelFirst = false,
  tone = "primary",
  onSubmit,
  testId,
  children,
}: DialogActionsProps) {
  return (
    <div className="dialog-actions">
      {children}
      <span className="spacer" />
      <button type="button" onClick={onCancel} data-autofocus={cancelFirst || undefined}>
        {cancelLabel}
      </button>
      <button
        type={onSubmit ? "button" : "submit"}
        className={tone}
        data-testid={testId}
        onClick={onSubmit}
        disabled={pending || disabled}
      >
        {pending ? pendingLabel : submitLabel}
      </button>
    </div>
  );
}
