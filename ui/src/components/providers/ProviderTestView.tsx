import type { Provider } from "../../bindings/Provider";
import type { ProviderKey } from "../../bindings/ProviderKey";
import type { ProviderTest } from "../../bindings/ProviderTest";

/** The key a test used, as the pool shows it: its label and last 4. */
function KeyUsed({ keyId, pool }: { keyId: string | undefined; pool: ProviderKey[] }) {
  if (!keyId) return <span className="muted">none usable</span>;
  const key = pool.find((k) => k.id === keyId);
  if (!key) return <span className="mono muted" title="No longer in the pool">{keyId}</span>;
  return (
    <span>
      {key.label} <span className="mono">…{key.last4}</span>
    </span>
  );
}

/**
 * The outcome of a provider test in one block: what the answer means, the provider's HTTP status
 * and latency, the key tried, the models listed (the provider's own in bold), and a warning for
 * configured models the provider does not list.
 */
export function ProviderTestView({ test, provider, pool, at }: { test: ProviderTest; provider: Provider; pool: ProviderKey[]; at: number }) {
  const configured = new Set(provider.models.map((m) => m.name));
  const missing = test.missing_models;
  return (
    <div className={`report ${test.ok ? "report-ok" : "report-failed"}`} role="status" data-testid="provider-test-result">
      <div className="report-headline" data-testid="provider-test-outcome">
        <strong>{test.ok ? "Test passed" : "Test failed"}</strong>: {test.message}
        <span className="muted">
          {" · "}
          {test.status !== undefined ? `HTTP ${test.status.toString()}` : "no HTTP answer"}
          {(test.status !== undefined || test.latency_ms > 0) && ` · ${test.latency_ms === 0 ? "<1" : test.latency_ms.toString()} ms`}
        </span>
      </div>
      <dl className="report-facts">
        <dt>Key</dt>
        <dd>
          <KeyUsed keyId={test.key_id} pool={pool} />
          {!test.ok && test.key_id && <span className="muted"> · its status is left as it was</span>}
        </dd>
        <dt>Models listed</dt>
        <dd className="cell-wrap" data-testid="provider-test-models">
          {test.models.length === 0 ? (
            <span className="muted">none</span>
          ) : (
            test.models.map((m, i) => (
              <span key={m} className="mono">
                {i > 0 && ", "}
                {configured.has(m) ? <strong title="Configured for this provider">{m}</strong> : m}
              </span>
            ))
          )}
        </dd>
        <dt>Tested</dt>
        <dd>{new Date(at).toLocaleTimeString()}</dd>
      </dl>
      {missing.length > 0 && (
        <p className="warning" data-testid="provider-test-missing">
          {missing.length === 1 ? "A configured model is" : `${missing.length.toString()} configured models are`} not listed by the provider:{" "}
          <span className="mono">{missing.join(", ")}</span>. Calls for {missing.length === 1 ? "it" : "them"} will likely fail: check the spelling.
        </p>
      )}
    </div>
  );
}
