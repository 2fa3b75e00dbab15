type Tone = "ok" | "warn" | "danger" | "muted";

const TONES: Record<string, Tone> = {
  active: "ok",
  up: "ok",
  stale: "warn",
  published: "ok",
  draft: "muted",
  deprecated: "warn",
  retired: "danger",
  succeeded: "ok",
  pending_approval: "warn",
  rotating: "warn",
  past_due: "warn",
  suspended: "warn",
  exhausted: "warn",
  failed: "danger",
  invalid: "danger",
  rejected: "danger",
  disabled: "muted",
  expired: "muted",
  revoked: "muted",
  canceled: "muted",
};

/** A status as a word in a tinted pill (never colour alone): `pending_approval` → "pending approval". */
export function StatusBadge({ status, testId }: { status: string; testId?: string }) {
  return (
    <span className={`badge badge-${TONES[status] ?? "muted"}`} data-testid={testId}>
      {status.replace(/_/g, " ")}
    </span>
  );
}
