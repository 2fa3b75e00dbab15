import { useKeyringStatus } from "../../lib/queries";

/** Stays up while the system keyring is unavailable: tokens cannot be stored then. */
export function KeyringBanner() {
  const status = useKeyringStatus();
  if (!status.data || status.data.available) return null;
  return (
    <div className="banner banner-warning" role="alert" data-testid="keyring-banner">
      <strong>The system keyring is unavailable.</strong>{" "}
      {status.data.message ?? "The console cannot store admin tokens until it is."} Adding an instance or changing its
      token will fail until then.
    </div>
  );
}
