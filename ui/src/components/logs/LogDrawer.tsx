import { useEffect, useRef, useState } from "react";
import type { ReactNode } from "react";

import type { CallLog } from "../../bindings/CallLog";
import { copyText } from "../../lib/clipboard";
import { absoluteTime, count } from "../../lib/format";
import { hrefOf } from "../../lib/route";
import { micros, statusTone } from "./LogTable";

function Fact({ label, children, testId }: { label: string; children: ReactNode; testId?: string }) {
  return (
    <>
      <dt>{label}</dt>
      <dd data-testid={testId}>{children ?? <span className="muted">—</span>}</dd>
    </>
  );
}

function Body({ title, text, testId }: { title: string; text: string | undefined; testId: string }) {
  return (
    <section className="logs-drawer-body-section">
      <h3>{title}</h3>
      {text === undefined ? (
        <p className="muted">Not captured (the API's log settings capture no bodies).</p>
      ) : (
        <pre className="logs-drawer-pre" data-testid={testId}>
          {text}
        </pre>
      )}
    </section>
  );
}

/**
 * Every field of one record, beside the table (the table stays usable). Esc or × closes it and
 * gives the focus back. Bodies are shown as the gateway stored them: already redacted.
 */
export function LogDrawer({ record, onClose }: { record: CallLog; onClose: () => void }) {
  const ref = useRef<HTMLElement>(null);
  const [copied, setCopied] = useState<boolean | null>(null);

  // Focus moves in on open and back to where it was on close.
  useEffect(() => {
    const before = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    ref.current?.focus();
    return () => before?.focus();
  }, []);

  useEffect(() => {
    const onKey = (e: globalThis.KeyboardEvent) => {
      // A modal dialog above handles its own Esc.
      if (e.key === "Escape" && !document.querySelector("dialog[open]")) {
        e.preventDefault();
        onClose();
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [onClose]);

  const r = record;
  return (
    <aside className="logs-drawer" ref={ref} tabIndex={-1} aria-labelledby="logs-drawer-title" data-testid="logs-drawer">
      <header className="logs-drawer-header">
        <h2 id="logs-drawer-title">
          <span className={`badge ${statusTone(r.status)}`}>{r.status}</span> {r.method} {r.path}
        </h2>
        <button type="button" className="icon-button" aria-label="Close the details (Esc)" onClick={onClose} data-testid="logs-drawer-close">
          ×
        </button>
      </header>
      <div className="logs-drawer-scroll">
        <div className="logs-drawer-id">
          <code data-testid="drawer-request-id">{r.id}</code>
          <button
            type="button"
            onClick={() => {
              void copyText(r.id).then(setCopied);
            }}
            data-testid="drawer-copy-id"
          >
            {copied === true ? "Copied" : copied === false ? "Copy failed" : "Copy request id"}
          </button>
          {r.status >= 400 && (
            <a className="button primary" href={hrefOf("doctor", r.id)} data-testid="drawer-diagnose">
              Diagnose with the 402 doctor
            </a>
          )}
        </div>
        <dl className="report-facts logs-drawer-facts">
          <Fact label="Time">
            <time dateTime={r.at} title={r.at}>
              {absoluteTime(r.at)}
            </time>
          </Fact>
          <Fact label="Log seq">{r.seq}</Fact>
          <Fact label="Status" testId="drawer-status">
            {r.status}
            {r.reason && <> · {r.reason}</>}
          </Fact>
          <Fact label="Upstream status" testId="drawer-upstream-status">
            {r.upstream_status}
          </Fact>
          <Fact label="Error" testId="drawer-error">
            {r.error}
          </Fact>
          <Fact label="API" testId="drawer-api">
            {r.api}
          </Fact>
          <Fact label="Team">{r.team_id ? <code>{r.team_id}</code> : undefined}</Fact>
          <Fact label="Consumer" testId="drawer-consumer">
            {r.consumer_id ? <code>{r.consumer_id}</code> : undefined}
          </Fact>
          <Fact label="Key">
            {r.key_id ? (
              <>
                <code>{r.key_id}</code>
                {r.key_prefix && <span className="muted"> ({r.key_prefix}…)</span>}
              </>
            ) : undefined}
          </Fact>
          <Fact label="Model" testId="drawer-model">
            {r.model}
          </Fact>
          <Fact label="Provider">{r.provider_id ? <code>{r.provider_id}</code> : undefined}</Fact>
          <Fact label="Provider key">{r.provider_key ? <code>{r.provider_key}</code> : undefined}</Fact>
          <Fact label="Latency" testId="drawer-latency">
            {micros(r.latency_us)}
          </Fact>
          <Fact label="Upstream latency">{r.upstream_us === undefined ? undefined : micros(r.upstream_us)}</Fact>
          <Fact label="Time to first token">{r.ttft_us === undefined ? undefined : micros(r.ttft_us)}</Fact>
          <Fact label="Tokens" testId="drawer-tokens">
            {count(r.tokens_in)} in · {count(r.tokens_out)} out
          </Fact>
          <Fact label="Cost" testId="drawer-cost">
            {r.cost} {r.currency}
          </Fact>
          <Fact label="Client IP">{r.client_ip ? <code>{r.client_ip}</code> : undefined}</Fact>
          <Fact label="User agent" testId="drawer-user-agent">
            {r.user_agent}
          </Fact>
        </dl>
        <Body title="Request body" text={r.request_body} testId="drawer-request-body" />
        <Body title="Response body" text={r.response_body} testId="drawer-response-body" />
      </div>
    </aside>
  );
}
