import type { Instance } from "../bindings/Instance";
import { ErrorState } from "../components/common/ErrorState";
import { LoadMore } from "../components/common/LoadMore";
import { NoInstance } from "../components/shell/NoInstance";
import { absoluteTime } from "../lib/format";
import { useAudit, useCurrentInstance } from "../lib/queries";

function AuditOf({ instance }: { instance: Instance }) {
  const audit = useAudit(instance.id);
  const rows = audit.data?.pages.flatMap((p) => p.items) ?? [];

  return (
    <section className="page">
      <div className="toolbar">
        <p className="muted">
          Every management write on <strong>{instance.name}</strong>
          {audit.dataUpdatedAt > 0 && <> · as of {new Date(audit.dataUpdatedAt).toLocaleTimeString()}</>}
        </p>
        <button type="button" className="link-button" onClick={() => void audit.refetch()} disabled={audit.isFetching}>
          {audit.isFetching && !audit.isPending ? "Reloading…" : "Reload"}
        </button>
      </div>

      {audit.isPending && <p className="muted">Loading the audit log…</p>}
      {audit.isError && !audit.data && <ErrorState what="the audit log" error={audit.error} onRetry={() => void audit.refetch()} />}
      {audit.isSuccess && rows.length === 0 && (
        <div className="empty">
          <p>
            <strong>Nothing recorded yet.</strong> Writes such as creating a team appear here.
          </p>
        </div>
      )}
      {rows.length > 0 && (
        <table className="table">
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Action</th>
              <th scope="col">Target</th>
              <th scope="col">Token</th>
              <th scope="col">Request</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((entry) => (
              <tr key={entry.id} data-testid={`audit-row-${entry.id}`}>
                <td className="nowrap">
                  <time dateTime={entry.time} title={entry.time}>
                    {absoluteTime(entry.time)}
                  </time>
                </td>
                <td>
                  <code className="action">{entry.action}</code>
                </td>
                <td className="mono">{entry.target}</td>
                <td className="mono">{entry.token_id}</td>
                <td className="mono muted">{entry.request_id}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <LoadMore query={audit} />
    </section>
  );
}

export function AuditPage() {
  const { instance, isPending } = useCurrentInstance();
  if (isPending) return <p className="page muted">Loading…</p>;
  if (!instance) return <NoInstance what="audit log" />;
  return <AuditOf key={instance.id} instance={instance} />;
}
