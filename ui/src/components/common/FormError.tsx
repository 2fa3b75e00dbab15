import type { ReactNode } from "react";

import type { BackendError } from "../../lib/backend";
import { ErrorText } from "./ErrorText";

/**
 * Why a form or an action was refused, announced to screen readers: the
 * backend's message and code, after an optional lead. Nothing when there is
 * no error.
 */
export function FormError({
  error,
  lead,
  testId,
}: {
  error: BackendError | null | undefined;
  lead?: ReactNode;
  testId?: string;
}) {
  if (!error) return null;
  return (
    <p className="form-error" role="alert" data-testid={testId}>
      {lead}
      {lead ? " " : null}
      <ErrorText error={error} />
    </p>
  );
}
