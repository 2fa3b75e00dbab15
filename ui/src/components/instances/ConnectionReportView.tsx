import type { ConnectionReport } from "../../bindings/ConnectionReport";
import { latency, skew } from "../../lib/format";

/** The outcome of a connection test, in one dense block. */
export function ConnectionReportView({ report }: { report: ConnectionReport }) {
  if (!report.ok) {
    return (
      <div className="report report-failed" role="status">
        <strong>Connection failed</strong>
        {report.error ? (
          <span className="error-text">
            {report.error.message}
            <code className="code-tag">{report.error.code}</code>
          </span>
        ) : (
          <span className="error-text">No answer.</span>
        )}
        {report.latency_ms !== undefined && <span className="muted">after {latency(report.latency_ms)}</span>}
      </div>
    );
  }
  return (
    <div className="report report-ok" role="status">
      <strong>Connected</strong>
      <dl className="report-facts">
        {report.instance_name && (
          <>
            <dt>Gateway</dt>
            <dd>{report.instance_name}</dd>
          </>
        )}
        <dt>Version</dt>
        <dd>{report.version ?? "—"}</dd>
        <dt>Latency</dt>
        <dd>{latency(report.latency_ms)}</dd>
        <dt>Scopes</dt>
        <dd>{report.scopes.length > 0 ? report.scopes.join(", ") : "none"}</dd>
        <dt>Clock skew</dt>
        <dd>{skew(report.clock_skew_ms)}</dd>
      </dl>
    </div>
  );
}

/** The same outcome on one line, for table cells. */
export function ConnectionReportLine({ report }: { report: ConnectionReport }) {
  if (!report.ok) {
    return (
      <span className="error-text" title={report.error?.message}>
        {report.error?.message ?? "Connection failed"}
        {report.error && <code className="code-tag">{report.error.code}</code>}
      </span>
    );
  }
  return (
    <span className="ok-text">
      OK · {report.version ?? "?"} · {latency(report.latency_ms)}
    </span>
  );
}
