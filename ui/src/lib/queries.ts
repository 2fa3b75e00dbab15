// Query keys and the shared queries. Pages build their mutations on top of
// these keys so that each write invalidates exactly what it changed.
import {
  QueryClient,
  useInfiniteQuery,
  useMutation,
  useQuery,
  useQueryClient,
} from "@tanstack/react-query";

import type { Instance } from "../bindings/Instance";
import * as backend from "./backend";
import { BackendError } from "./backend";

export const keys = {
  keyring: ["keyring_status"] as const,
  instances: ["instances"] as const,
  current: ["current_instance"] as const,
  fleet: ["fleet"] as const,
  teams: (instanceId: string) => ["teams", instanceId] as const,
  audit: (instanceId: string) => ["audit", instanceId] as const,
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
