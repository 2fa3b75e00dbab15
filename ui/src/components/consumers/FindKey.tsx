import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import type { SubmitEvent } from "react";

import type { Instance } from "../../bindings/Instance";
import * as backend from "../../lib/backend";
import { absoluteTime, relativeTime } from "../../lib/format";
import { ErrorText } from "../common/ErrorText";
import { StatusBadge } from "../common/StatusBadge";

/** "Which consumer owns tg_ab12…?": finds keys by the prefix of a leaked or unknown secret. */
export function FindKey({ instance, now }: { instance: Instance; now: number }) {
  const [text, setText] = useState("");
  const [prefix, setPrefix] = useState<string | null>(null);
  const found = useQuery({
    queryKey: ["find_keys", instance.id, prefix],
    queryFn: () => backend.findKeys(instance.id, prefix ?? ""),
    enabled: prefix !== null,
  });

  function onSubmit(e: SubmitEvent) {
    e.preventDefault();
    // Only the recognisable start matters; never keep a pasted full secret around longer than needed.
    const p = text.trim().slice(0, 16);
    setText(p);
    setPrefix(p || null);
  }

  const rows = found.data?.items ?? [];

  return (
    <div className="find-key">
      <form className="toolbar" onSubmit={onSubmit} role="search">
        <label className="filter">
          Find key by prefix
          <input
            data-testid="find-key-prefix"
            value={text}
            placeholder="tg_ab12cd34"
            onChange={(e) => setText(e.target.value)}
            className="mono"
            autoComplete="off"
            spellCheck={false}
          />
        </label>
        <button type="submit" data-testid="find-key">
          Find
        </button>
        {prefix !== null && (
          <button
            type="button"
            className="link-button"
            onClick={() => {
              setPrefix(null);
              setText("");
            }}
          >
            Clear
          </button>
        )}
      </form>
      {prefix !== null && found.isPending && <p className="muted">Searching…</p>}
      {found.isError && (
        <p className="form-error" role="alert">
          <ErrorText error={found.error} />
        </p>
      )}
      {prefix !== null && found.isSuccess && rows.length === 0 && (
        <p className="muted">No key starts with <span className="mono">{prefix}</span> on {instance.name}.</p>
      )}
      {rows.length > 0 && (
        <table className="table" data-testid="found-keys">
          <thead>
            <tr>
              <th scope="col">Prefix</th>
              <th scope="col">Key</th>
              <th scope="col">Consumer</th>
              <th scope="col">Status</th>
              <th scope="col">Last used</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((k) => (
              <tr key={k.id}>
                <td className="mono">{k.display_prefix}…</td>
                <td>{k.name}</td>
                <td className="mono">
                  <a href={`#/consumers/${k.consumer_id}`}>{k.consumer_id}</a>
                </td>
                <td>
                  <StatusBadge status={k.status} />
                </td>
                <td>
                  {k.last_used_at ? (
                    <time dateTime={k.last_used_at} title={absoluteTime(k.last_used_at)}>
                      {relativeTime(k.last_used_at, now)}
                    </time>
                  ) : (
                    <span className="muted">never</span>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
