import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import type { InfiniteData } from "@tanstack/react-query";
import { useState } from "react";

import type { Consumer } from "../bindings/Consumer";
import type { Instance } from "../bindings/Instance";
import type { Page } from "../bindings/Page";
import { ConfirmDialog } from "../components/common/ConfirmDialog";
import { ConsumerSubscriptions } from "../components/consumers/ConsumerSubscriptions";
import { ErrorState } from "../components/common/ErrorState";
import { KeysSection } from "../components/consumers/KeysSection";
import { PaymentSection } from "../components/consumers/PaymentSection";
import { ProdNotice } from "../components/shell/ProdNotice";
import { StatusBadge } from "../components/common/StatusBadge";
import { useToast } from "../components/common/Toaster";
import * as backend from "../lib/backend";
import { BackendError } from "../lib/backend";
import { invalidateWith, keys, useTeams } from "../lib/queries";
import { hrefOf } from "../lib/route";
import { useNow } from "../lib/useNow";
import { WalletSection } from "../components/consumers/WalletSection";

/** The most pages to walk looking for one consumer (there is no single-consumer read). */
const MAX_PAGES = 50;

/** Finds the consumer in a cached list first, else pages through the instance's consumers. */
function useConsumer(instanceId: string, consumerId: string) {
  const client = useQueryClient();
  return useQuery({
    queryKey: [...keys.consumers(instanceId), "one", consumerId],
    queryFn: async (): Promise<Consumer> => {
      let cursor: string | null = null;
      for (let n = 0; n < MAX_PAGES; n++) {
        const page: Page<Consumer> = await backend.listConsumers(instanceId, null, cursor);
        const found = page.items.find((c) => c.id === consumerId);
        if (found) return found;
        if (!page.next_cursor) break;
        cursor = page.next_cursor;
      }
      throw new BackendError("not_found", `No consumer ${consumerId} on this instance (it may have been deleted).`);
    },
    initialData: () => {
      for (const [, data] of client.getQueriesData<InfiniteData<Page<Consumer>>>({ queryKey: keys.consumers(instanceId) })) {
        const found = data?.pages.flatMap((p) => p.items).find((c) => c.id === consumerId);
        if (found) return found;
      }
      return undefined;
    },
    initialDataUpdatedAt: () => client.getQueryState(keys.consumerList(instanceId, null))?.dataUpdatedAt,
  });
}

export function ConsumerDetail({ instance, consumerId }: { instance: Instance; consumerId: string }) {
  const consumer = useConsumer(instance.id, consumerId);
  const teams = useTeams(instance.id);
  const client = useQueryClient();
  const toast = useToast();
  const now = useNow(10_000);
  const [suspending, setSuspending] = useState(false);

  const setStatus = useMutation({
    mutationFn: (c: Consumer) =>
      backend.updateConsumer(instance.id, c.id, { status: c.status === "active" ? "suspended" : "active" }, c.version),
    onSuccess: async (saved) => {
      setSuspending(false);
      toast.success(saved.status === "suspended" ? `Suspended consumer “${saved.name}”.` : `Reactivated consumer “${saved.name}”.`);
      await invalidateWith(client, instance.id, [keys.consumers(instance.id)]);
    },
    onError: async (error) => {
      if (!suspending) toast.error("Could not change the consumer's status", error);
      if (error.code === "precondition_failed") await invalidateWith(client, instance.id, [keys.consumers(instance.id)]);
    },
  });

  const back = (
    <p>
      <a href={hrefOf("consumers")} data-testid="back-to-consumers">
        ← All consumers
      </a>
    </p>
  );

  if (consumer.isPending) {
    return (
      <section className="page">
        {back}
        <p className="muted">Loading the consumer…</p>
      </section>
    );
  }
  if (consumer.isError) {
    return (
      <section className="page">
        {back}
        <ErrorState what="the consumer" error={consumer.error} onRetry={() => void consumer.refetch()} />
      </section>
    );
  }

  const c = consumer.data;
  const teamName = teams.data?.pages.flatMap((p) => p.items).find((t) => t.id === c.team_id)?.name;

  return (
    <section className="page" data-testid="consumer-detail">
      {back}
      <div className="toolbar">
        <h1 className="detail-title">{c.name}</h1>
        <StatusBadge status={c.status} testId="consumer-status" />
        <span className="muted">
          team {teamName ?? <span className="mono">{c.team_id}</span>} · {c.contact || "no contact"} · <span className="mono">{c.id}</span>
        </span>
        <span className="spacer" />
        <a className="button" href={hrefOf("doctor", c.id)} data-testid="consumer-diagnose">
          Diagnose with the 402 doctor
        </a>
        {c.status === "active" ? (
          <button
            type="button"
            className="danger-quiet"
            data-testid="suspend-consumer"
            onClick={() => {
              setStatus.reset();
              setSuspending(true);
            }}
          >
            Suspend consumer
          </button>
        ) : (
          <button type="button" data-testid="activate-consumer" onClick={() => setStatus.mutate(c)} disabled={setStatus.isPending}>
            Reactivate consumer
          </button>
        )}
      </div>

      <KeysSection instance={instance} consumerId={c.id} now={now} />
      <ConsumerSubscriptions instance={instance} consumerId={c.id} now={now} />
      <PaymentSection instance={instance} consumerId={c.id} now={now} />
      <WalletSection instance={instance} consumerId={c.id} now={now} />

      {suspending && (
        <ConfirmDialog
          title="Suspend consumer"
          confirmLabel="Suspend consumer"
          onConfirm={() => setStatus.mutate(c)}
          onCancel={() => setSuspending(false)}
          pending={setStatus.isPending}
          error={setStatus.error}
        >
          <ProdNotice instance={instance} />
          <p>Suspend consumer “{c.name}”? All its calls are refused until it is reactivated. Its keys, subscriptions and wallet are kept.</p>
        </ConfirmDialog>
      )}
    </section>
  );
}
