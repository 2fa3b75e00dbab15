/** The log explorer: the selected instance's call log, read from the local cache. */
export function LogsPage() {
  return <p className="muted">The log explorer is being built.</p>;
}
