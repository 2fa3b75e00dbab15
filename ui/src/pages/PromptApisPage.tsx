import type { KeyboardEvent } from "react";

import type { Instance } from "../bindings/Instance";
import type { PromptApi } from "../bindings/PromptApi";
import { ErrorState } from "../components/common/ErrorState";
import { LoadMore } from "../components/common/LoadMore";
import { NoInstance } from "../components/shell/NoInstance";
import { PromptStudio } from "../components/prompts/PromptStudio";
import { StatusBadge } from "../components/common/StatusBadge";
import { When } from "../components/common/When";
import { useCurrentInstance, usePromptApi, usePromptApis } from "../lib/queries";
import { hrefOf, navigate, useRoute } from "../lib/route";
import { useNow } from "../lib/useNow";

/** The route detail that opens the studio on a new API. */
const NEW = "new";

function PromptApiList({ instance }: { instance: Instance }) {
  const apis = usePromptApis(instance.id);
  const now = useNow(10_000);
  const rows = apis.data?.pages.flatMap((p) => p.items) ?? [];
  const open = (api: PromptApi) => navigate("prompt-apis", api.id);
  const onRowKey = (e: KeyboardEvent, api: PromptApi) => {
    if (e.target === e.currentTarget && (e.key === "Enter" || e.key === " ")) {
      e.preventDefault();
      open(api);
    }
  };

  return (
    <section className="page">
      <div className="toolbar">
        <p className="muted">
          Prompt APIs of <strong>{instance.name}</strong>
          {apis.dataUpdatedAt > 0 && <> · as of {new Date(apis.dataUpdatedAt).toLocaleTimeString()}</>}
        </p>
        <button type="button" className="link-button" onClick={() => void apis.refetch()} disabled={apis.isFetching}>
          {apis.isFetching && !apis.isPending ? "Reloading…" : "Reload"}
        </button>
        <span className="spacer" />
        <a className="button primary" href={hrefOf("prompt-apis", NEW)} data-testid="new-prompt-api">
          New prompt API
        </a>
      </div>
      {apis.isPending && <p className="muted">Loading prompt APIs…</p>}
      {apis.isError && !apis.data && <ErrorState what="the prompt APIs" error={apis.error} onRetry={() => void apis.refetch()} />}
      {apis.isSuccess && rows.length === 0 && (
        <div className="empty">
          <p>
            <strong>No prompt APIs yet — create the first.</strong> A prompt API is a prompt template with typed variables and a model,
            published as an endpoint of its own (<code>POST /apis/&lt;slug&gt;</code>) that consumers call with just the variables.
          </p>
          <a className="button primary" href={hrefOf("prompt-apis", NEW)}>
            New prompt API
          </a>
        </div>
      )}
      {rows.length > 0 && (
        <table className="table">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Slug</th>
              <th scope="col">Status</th>
              <th scope="col" className="num">
                Current / latest version
              </th>
              <th scope="col">Model → fallbacks</th>
              <th scope="col">Updated</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((api) => (
              <tr
                key={api.id}
                className="row-clickable"
                data-testid={`prompt-api-row-${api.slug}`}
                tabIndex={0}
                onClick={() => open(api)}
                onKeyDown={(e) => onRowKey(e, api)}
              >
                <td>
                  <strong>{api.name}</strong>
                </td>
                <td className="mono">{api.slug}</td>
                <td>
                  <StatusBadge status={api.status} testId={`prompt-api-status-${api.slug}`} />
                </td>
                <td className="num">
                  v{api.current_version} / v{api.latest_version}
                </td>
                <td className="mono cell-wrap">{api.current.models.join(" → ")}</td>
                <td>
                  <When iso={api.updated_at} now={now} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <LoadMore query={apis} />
    </section>
  );
}

function ExistingStudio({ instance, apiId }: { instance: Instance; apiId: string }) {
  const api = usePromptApi(instance.id, apiId);
  const back = (
    <p className="page">
      <a href={hrefOf("prompt-apis")}>← All prompt APIs</a>
    </p>
  );
  if (api.isPending) return <>{back}<p className="page muted">Loading the prompt API…</p></>;
  if (api.isError)
    return (
      <>
        {back}
        <div className="page">
          <ErrorState what="the prompt API" error={api.error} onRetry={() => void api.refetch()} />
        </div>
      </>
    );
  return <PromptStudio key={api.data.id} instance={instance} api={api.data} />;
}

export function PromptApisPage() {
  const { instance, isPending } = useCurrentInstance();
  const { detail } = useRoute();
  if (isPending) return <p className="page muted">Loading…</p>;
  if (!instance) return <NoInstance what="prompt APIs" />;
  if (detail === NEW) return <PromptStudio key={`${instance.id}-new`} instance={instance} api={null} />;
  if (detail) return <ExistingStudio key={`${instance.id}-${detail}`} instance={instance} apiId={detail} />;
  return <PromptApiList key={instance.id} instance={instance} />;
}
