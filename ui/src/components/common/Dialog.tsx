import { useEffect, useId, useRef } from "react";
import type { ReactNode } from "react";

interface DialogProps {
  title: string;
  onClose: () => void;
  children: ReactNode;
  wide?: boolean;
}

/**
 * A modal on the native `<dialog>`: focus is trapped, Esc closes, the rest of
 * the page is inert. Mount it to open it, unmount it to close it. Mark the
 * control to focus first with `data-autofocus`.
 */
export function Dialog({ title, onClose, children, wide = false }: DialogProps) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();

  // Set while unmounting: closing the element then (to give focus back) must not call onClose again.
  const unmounting = useRef(false);

  useEffect(() => {
    const dialog = ref.current;
    unmounting.current = false;
    if (dialog && !dialog.open) {
      dialog.showModal();
      // showModal focuses the first focusable element (the × button); prefer the
      // content's own choice (`data-autofocus`), else its first control.
      const body = dialog.querySelector(".dialog-body");
      const target =
        body?.querySelector<HTMLElement>("[data-autofocus]") ??
        body?.querySelector<HTMLElement>("input, select, textarea, button");
      target?.focus();
    }
    return () => {
      unmounting.current = true;
      dialog?.close();
    };
  }, []);

  return (
    <dialog
      ref={ref}
      className={wide ? "dialog dialog-wide" : "dialog"}
      aria-labelledby={titleId}
      onCancel={(e) => {
        e.preventDefault();
        onClose();
      }}
      onClose={() => {
        // Ignore a stale close event from a dialog shown again since (StrictMode remounts).
        if (!unmounting.current && !ref.current?.open) onClose();
      }}
    >
      <header className="dialog-header">
        <h2 id={titleId}>{title}</h2>
        <button type="button" className="icon-button" aria-label="Close" onClick={onClose}>
          ×
        </button>
      </header>
      <div className="dialog-body">{children}</div>
    </dialog>
  );
}
