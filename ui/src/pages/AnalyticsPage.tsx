/** Analytics: charts of the call log, per instance and across the fleet, from the local caches. */
export function AnalyticsPage() {
  return <p className="muted">Analytics are being built.</p>;
}
