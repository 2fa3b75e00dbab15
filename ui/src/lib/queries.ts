// Query keys and the shared queries. Pages build their mutations on top of
// these keys so that each write invalidates exactly what it changed.
import {
  keepPreviousData,
  QueryClient,
  useInfiniteQuery,
  useMutation,
  useQuery,
  useQueryClient,
} from "@tanstack/react-query";

import type { Instance } from "../bindings/Instance";
import type { PromptDefinition } from "../bindings/PromptDefinition";
import * as backend from "./backend";
import { BackendError } from "./backend";

export const keys = {
  keyring: ["keyring_status"] as const,
  instances: ["instances"] as const,
  current: ["current_instance"] as const,
  fleet: ["fleet"] as const,
  nodes: (instanceId: string) => ["nodes", instanceId] as const,
  teams: (instanceId: string) => ["teams", instanceId] as const,
  audit: (instanceId: string) => ["audit", instanceId] as const,
  /** Every consumer list of the instance (all team filters). */
  consumers: (instanceId: string) => ["consumers", instanceId] as const,
  consumerList: (instanceId: string, teamId: string | null) => ["consumers", instanceId, "list", teamId] as const,
  consumerKeys: (instanceId: string, consumerId: string) => ["consumer_keys", instanceId, consumerId] as const,
  plans: (instanceId: string) => ["plans", instanceId] as const,
  paymentSettings: (instanceId: string) => ["payment_settings", instanceId] as const,
  providers: (instanceId: string) => ["providers", instanceId] as const,
  providerKeys: (instanceId: string, providerId: string) => ["provider_keys", instanceId, providerId] as const,
  providerKeyEvents: (instanceId: string, providerId: string) => ["provider_key_events", instanceId, providerId] as const,
  providerTest: (instanceId: string, providerId: string) => ["provider_test", instanceId, providerId] as const,
  promptApis: (instanceId: string) => ["prompt_apis", instanceId] as const,
  promptApi: (instanceId: string, apiId: string) => ["prompt_apis", instanceId, "one", apiId] as const,
  promptApiVersions: (instanceId: string, apiId: string) => ["prompt_apis", instanceId, "versions", apiId] as const,
  promptApiSnippets: (instanceId: string, apiId: string) => ["prompt_apis", instanceId, "snippets", apiId] as const,
  billingCheck: (instanceId: string) => ["billing_check", instanceId] as const,
  /** Every subscription list of the instance (all filters). */
  subscriptions: (instanceId: string) => ["subscriptions", instanceId] as const,
  subscriptionList: (instanceId: string, status: string | null, consumerId: string | null) =>
    ["subscriptions", instanceId, status, consumerId] as const,
  paymentMethods: (instanceId: string, consumerId: string) => ["payment_methods", instanceId, consumerId] as const,
  charges: (instanceId: string, consumerId: string) => ["charges", instanceId, consumerId] as const,
  wallets: (instanceId: string, consumerId: string) => ["wallets", instanceId, consumerId] as const,
  ledger: (instanceId: string, consumerId: string, currency: string) =>
    ["ledger", instanceId, consumerId, currency] as const,
};

/** Transient transport failures are worth one quiet retry; everything else is shown at once. */
const RETRYABLE = new Set(["network", "timeout"]);

export function makeQueryClient(): QueryClient {
  return new QueryClient({
    defaultOptions: {
      queries: {
        staleTime: 5_000,
        retry: (failures, error) =>
          failures < 1 && error instanceof BackendError && RETRYABLE.has(error.code),
      },
      mutations: { retry: false },
    },
  });
}

export function useKeyringStatus() {
  return useQuery({ queryKey: keys.keyring, queryFn: backend.keyringStatus, staleTime: 60_000 });
}

export function useInstances() {
  return useQuery({ queryKey: keys.instances, queryFn: backend.listInstances });
}

export function useCurrentInstanceId() {
  return useQuery({ queryKey: keys.current, queryFn: backend.currentInstance });
}

/** The current instance, resolved against the instance list (`null` when none is chosen). */
export function useCurrentInstance(): {
  instance: Instance | null;
  isPending: boolean;
} {
  const current = useCurrentInstanceId();
  const instances = useInstances();
  const instance = instances.data?.find((i) => i.id === current.data) ?? null;
  return { instance, isPending: current.isPending || instances.isPending };
}

/** Switches the current instance, optimistically: the switcher must feel instant. */
export function useSwitchInstance() {
  const client = useQueryClient();
  return useMutation<null, BackendError, string, { previous: string | null | undefined }>({
    mutationFn: backend.setCurrentInstance,
    onMutate: async (id) => {
      await client.cancelQueries({ queryKey: keys.current });
      const previous = client.getQueryData<string | null>(keys.current);
      client.setQueryData(keys.current, id);
      return { previous };
    },
    onError: (_error, _id, context) => {
      if (context) client.setQueryData(keys.current, context.previous);
    },
    onSettled: () => client.invalidateQueries({ queryKey: keys.current }),
  });
}

export function useFleet() {
  return useQuery({
    queryKey: keys.fleet,
    queryFn: backend.fleetOverview,
    // The backend checks in the background (with backoff); we just follow along.
    refetchInterval: 2_000,
    staleTime: 0,
  });
}

export function useTeams(instanceId: string | null) {
  return useInfiniteQuery({
    queryKey: keys.teams(instanceId ?? ""),
    queryFn: ({ pageParam }) => backend.listTeams(instanceId ?? "", pageParam),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor ?? null,
    enabled: instanceId !== null,
  });
}

export function useAudit(instanceId: string | null) {
  return useInfiniteQuery({
    queryKey: keys.audit(instanceId ?? ""),
    queryFn: ({ pageParam }) => backend.listAudit(instanceId ?? "", pageParam),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor ?? null,
    enabled: instanceId !== null,
  });
}

export function useConsumers(instanceId: string, teamId: string | null) {
  return useInfiniteQuery({
    queryKey: keys.consumerList(instanceId, teamId),
    queryFn: ({ pageParam }) => backend.listConsumers(instanceId, teamId, pageParam),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor ?? null,
  });
}

export function useConsumerKeys(instanceId: string, consumerId: string) {
  return useQuery({
    queryKey: keys.consumerKeys(instanceId, consumerId),
    queryFn: () => backend.listConsumerKeys(instanceId, consumerId),
  });
}

export function usePlans(instanceId: string) {
  return useInfiniteQuery({
    queryKey: keys.plans(instanceId),
    queryFn: ({ pageParam }) => backend.listPlans(instanceId, pageParam),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor ?? null,
  });
}

export function usePaymentSettings(instanceId: string) {
  return useQuery({
    queryKey: keys.paymentSettings(instanceId),
    queryFn: () => backend.paymentSettings(instanceId),
  });
}

export function useProviders(instanceId: string) {
  return useInfiniteQuery({
    queryKey: keys.providers(instanceId),
    queryFn: ({ pageParam }) => backend.listProviders(instanceId, pageParam),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor ?? null,
  });
}

/** The pool with each key's use; the gateway counts calls on its own, so it is re-read every 15 s. */
export function useProviderKeys(instanceId: string, providerId: string) {
  return useQuery({
    queryKey: keys.providerKeys(instanceId, providerId),
    queryFn: () => backend.listProviderKeys(instanceId, providerId),
    refetchInterval: 15_000,
  });
}

/**
 * A test of the provider (its model list, asked with the pool's first usable key). It changes
 * nothing, so it is held like a read, but it calls the provider: it runs only when `refetch`ed.
 */
export function useProviderTest(instanceId: string, providerId: string) {
  return useQuery({
    queryKey: keys.providerTest(instanceId, providerId),
    queryFn: () => backend.testProvider(instanceId, providerId),
    enabled: false,
    retry: false,
  });
}

/** The pool's status history; the gateway adds to it on its own, so it is re-read every 15 s. */
export function useProviderKeyEvents(instanceId: string, providerId: string) {
  return useQuery({
    queryKey: keys.providerKeyEvents(instanceId, providerId),
    queryFn: () => backend.listProviderKeyEvents(instanceId, providerId, null, 50),
    refetchInterval: 15_000,
  });
}

export function usePromptApis(instanceId: string) {
  return useInfiniteQuery({
    queryKey: keys.promptApis(instanceId),
    queryFn: ({ pageParam }) => backend.listPromptApis(instanceId, pageParam),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor ?? null,
  });
}

export function usePromptApi(instanceId: string, apiId: string | null) {
  return useQuery({
    queryKey: keys.promptApi(instanceId, apiId ?? ""),
    queryFn: () => backend.getPromptApi(instanceId, apiId ?? ""),
    enabled: apiId !== null,
  });
}

export function usePromptApiVersions(instanceId: string, apiId: string) {
  return useQuery({
    queryKey: keys.promptApiVersions(instanceId, apiId),
    queryFn: () => backend.listPromptApiVersions(instanceId, apiId),
  });
}

export function usePromptApiSnippets(instanceId: string, apiId: string) {
  return useQuery({
    queryKey: keys.promptApiSnippets(instanceId, apiId),
    queryFn: () => backend.promptApiSnippets(instanceId, apiId),
  });
}

/** The live preview: computed by the console (no gateway), re-asked as the definition or the values change. */
export function usePromptPreview(definition: PromptDefinition, values: Record<string, string>) {
  return useQuery({
    queryKey: ["prompt_preview", definition, values],
    queryFn: () => backend.previewPrompt(definition, values),
    placeholderData: keepPreviousData,
    staleTime: Infinity,
    gcTime: 10_000,
    retry: false,
  });
}

/** The diff from the first definition to the second (computed by the console). */
export function usePromptDiff(pair: readonly [PromptDefinition, PromptDefinition] | null) {
  return useQuery({
    queryKey: ["prompt_diff", pair],
    queryFn: () => (pair ? backend.diffPromptDefinitions(pair[0], pair[1]) : Promise.resolve([])),
    enabled: pair !== null,
    staleTime: Infinity,
    retry: false,
  });
}

/** The gateway's own billing check; it changes nothing, so it runs like a read. */
export function useBillingCheck(instanceId: string) {
  return useQuery({
    queryKey: keys.billingCheck(instanceId),
    queryFn: () => backend.checkBilling(instanceId),
  });
}

export function useSubscriptions(instanceId: string, status: string | null, consumerId: string | null) {
  return useInfiniteQuery({
    queryKey: keys.subscriptionList(instanceId, status, consumerId),
    queryFn: ({ pageParam }) => backend.listSubscriptions(instanceId, status, consumerId, pageParam),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor ?? null,
  });
}

export function usePaymentMethods(instanceId: string, consumerId: string) {
  return useQuery({
    queryKey: keys.paymentMethods(instanceId, consumerId),
    queryFn: () => backend.listPaymentMethods(instanceId, consumerId),
  });
}

export function useCharges(instanceId: string, consumerId: string) {
  return useInfiniteQuery({
    queryKey: keys.charges(instanceId, consumerId),
    queryFn: ({ pageParam }) => backend.listCharges(instanceId, consumerId, pageParam),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor ?? null,
  });
}

export function useWallets(instanceId: string, consumerId: string) {
  return useQuery({
    queryKey: keys.wallets(instanceId, consumerId),
    queryFn: () => backend.listWallets(instanceId, consumerId),
  });
}

export function useLedger(instanceId: string, consumerId: string, currency: string | null) {
  return useInfiniteQuery({
    queryKey: keys.ledger(instanceId, consumerId, currency ?? ""),
    queryFn: ({ pageParam }) => backend.listLedger(instanceId, consumerId, currency ?? "", pageParam),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor ?? null,
    enabled: currency !== null && currency !== "",
  });
}

/** After any change to the instance registry. */
export async function invalidateInstances(client: QueryClient): Promise<void> {
  await Promise.all([
    client.invalidateQueries({ queryKey: keys.instances }),
    client.invalidateQueries({ queryKey: keys.fleet }),
    client.invalidateQueries({ queryKey: keys.current }),
  ]);
}

/** After a write to an instance's teams (which also lands in its audit log). */
export async function invalidateTeams(client: QueryClient, instanceId: string): Promise<void> {
  await Promise.all([
    client.invalidateQueries({ queryKey: keys.teams(instanceId) }),
    client.invalidateQueries({ queryKey: keys.audit(instanceId) }),
  ]);
}

/** Invalidates the given keys of an instance, plus its audit log (every admin write lands there). */
export async function invalidateWith(
  client: QueryClient,
  instanceId: string,
  queryKeys: readonly (readonly unknown[])[],
): Promise<void> {
  await Promise.all([
    ...queryKeys.map((queryKey) => client.invalidateQueries({ queryKey })),
    client.invalidateQueries({ queryKey: keys.audit(instanceId) }),
  ]);
}

// ---- Log explorer and cache management (the local call-log caches) ----------
// Everything here reads the console's own files: it works with the instance unreachable.

export const explorerKeys = {
  /** Every explorer query of an instance (pages, records). */
  all: (instanceId: string) => ["log_explorer", instanceId] as const,
  pages: (instanceId: string, filter: unknown) => ["log_explorer", instanceId, "pages", filter] as const,
  record: (instanceId: string, seq: number) => ["log_explorer", instanceId, "record", seq] as const,
  cacheInfo: (instanceId: string) => ["log_cache_info", instanceId] as const,
  caches: ["log_caches"] as const,
  syncEvents: (instanceId: string) => ["log_sync_events", instanceId] as const,
  savedFilters: (instanceId: string) => ["saved_log_filters", instanceId] as const,
  exportDir: ["log_export_dir"] as const,
};

/** The instance's cache: size, contents, last sync and its error. Re-read every 10 s (the sync runs in the background). */
export function useLogCacheInfo(instanceId: string) {
  return useQuery({
    queryKey: explorerKeys.cacheInfo(instanceId),
    queryFn: () => backend.logCacheInfo(instanceId),
    refetchInterval: 10_000,
  });
}

export function useLogCaches() {
  return useQuery({ queryKey: explorerKeys.caches, queryFn: backend.logCaches, refetchInterval: 10_000 });
}

export function useLogSyncEvents(instanceId: string) {
  return useQuery({
    queryKey: explorerKeys.syncEvents(instanceId),
    queryFn: () => backend.logSyncEvents(instanceId, 50),
  });
}

export function useSavedLogFilters(instanceId: string) {
  return useQuery({
    queryKey: explorerKeys.savedFilters(instanceId),
    queryFn: () => backend.listSavedLogFilters(instanceId),
  });
}
