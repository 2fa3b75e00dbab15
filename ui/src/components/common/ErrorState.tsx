import type { BackendError } from "../../lib/backend";
import { ErrorText } from "./ErrorText";

/** A failed load: what failed, the precise error, and a way to try again. */
export function ErrorState({ what, error, onRetry }: { what: string; error: BackendError; onRetry: () => void }) {
  return (
    <div className="error-state" role="alert">
      <p>
        <strong>Could not load {what}.</strong> <ErrorText error={error} />
      </p>
      <button type="button" onClick={onRetry}>
        Retry
      </button>
    </div>
  );
}
