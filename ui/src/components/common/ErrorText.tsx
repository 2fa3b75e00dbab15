import type { BackendError } from "../../lib/backend";

/** A backend error as one line: its message, then its code in small type. */
export function ErrorText({ error }: { error: BackendError }) {
  return (
    <span className="error-text" title={error.message}>
      {error.message}
      <code className="code-tag">{error.code}</code>
    </span>
  );
}
