// The one adapter between the UI and the Rust backend: the only module that
// calls `invoke`. One typed function per Tauri command; every rejection
// becomes a `BackendError`.
import { invoke } from "@tauri-apps/api/core";

import type { AuditEntry } from "../bindings/AuditEntry";
import type { ConnectionReport } from "../bindings/ConnectionReport";
import type { CreateTeam } from "../bindings/CreateTeam";
import type { FieldError } from "../bindings/FieldError";
import type { FleetEntry } from "../bindings/FleetEntry";
import type { Instance } from "../bindings/Instance";
import type { InstanceInput } from "../bindings/InstanceInput";
import type { IpcError } from "../bindings/IpcError";
import type { KeyringStatus } from "../bindings/KeyringStatus";
import type { Page } from "../bindings/Page";
import type { Team } from "../bindings/Team";
import type { UpdateTeam } from "../bindings/UpdateTeam";

/** The codes the UI branches on (the backend may send others). */
export type ErrorCode =
  | "validation"
  | "keyring_unavailable"
  | "missing_token"
  | "not_found"
  | "precondition_failed"
  | "conflict"
  | "unauthorized"
  | "forbidden"
  | "dns"
  | "connection_refused"
  | "tls"
  | "timeout"
  | "not_a_gateway"
  | "response_too_large"
  | "malformed_response"
  | "network"
  | "storage"
  | "gateway_error"
  /** Not from the backend: the IPC call itself failed (no Tauri, unknown command…). */
  | "ipc";

/** A failed backend command: the IpcError `{code, message, fields?}` as an Error. */
export class BackendError extends Error {
  readonly code: ErrorCode | (string & {});
  readonly fields: FieldError[];

  constructor(code: string, message: string, fields: FieldError[] = []) {
    super(message);
    this.name = "BackendError";
    this.code = code;
    this.fields = fields;
  }

  /** Whether this is the given code. */
  is(code: ErrorCode): boolean {
    return this.code === code;
  }
}

function isIpcError(value: unknown): value is IpcError {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.code === "string" && typeof v.message === "string";
}

function toBackendError(raw: unknown): BackendError {
  if (raw instanceof BackendError) return raw;
  if (isIpcError(raw)) return new BackendError(raw.code, raw.message, raw.fields ?? []);
  if (typeof raw === "string") return new BackendError("ipc", raw);
  if (raw instanceof Error) return new BackendError("ipc", raw.message);
  return new BackendError("ipc", "The backend did not answer.");
}

async function call<T>(command: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(command, args);
  } catch (raw: unknown) {
    throw toBackendError(raw);
  }
}

// ---- Console state -------------------------------------------------------

export const keyringStatus = () => call<KeyringStatus>("keyring_status");

export const currentInstance = () => call<string | null>("current_instance");

export const setCurrentInstance = (id: string) => call<null>("set_current_instance", { id });

// ---- Instances -----------------------------------------------------------

export const listInstances = () => call<Instance[]>("list_instances");

export const addInstance = (input: InstanceInput) => call<Instance>("add_instance", { input });

/** An absent or empty `admin_token` keeps the stored token. */
export const updateInstance = (id: string, input: InstanceInput) =>
  call<Instance>("update_instance", { id, input });

export const removeInstance = (id: string) => call<null>("remove_instance", { id });

export const testConnection = (id: string) => call<ConnectionReport>("test_connection", { id });

/** Tests the add / edit form before saving; `existingId` lends the stored token on edit. */
export const probeInstance = (input: InstanceInput, existingId: string | null) =>
  call<ConnectionReport>("probe_instance", { input, existingId });

// ---- Fleet ---------------------------------------------------------------

export const fleetOverview = () => call<FleetEntry[]>("fleet_overview");

/** Marks every instance due; the backend re-checks within about a second. */
export const refreshFleet = () => call<null>("refresh_fleet");

// ---- Teams ---------------------------------------------------------------

export const listTeams = (instanceId: string, cursor: string | null) =>
  call<Page<Team>>("list_teams", { instanceId, cursor });

export const createTeam = (instanceId: string, input: CreateTeam, idempotencyKey: string) =>
  call<Team>("create_team", { instanceId, input, idempotencyKey });

/** `version` is the team's version as read; a stale one fails with `precondition_failed`. */
export const updateTeam = (instanceId: string, teamId: string, patch: UpdateTeam, version: number) =>
  call<Team>("update_team", { instanceId, teamId, patch, version });

export const deleteTeam = (instanceId: string, teamId: string, version: number) =>
  call<null>("delete_team", { instanceId, teamId, version });

// ---- Audit ---------------------------------------------------------------

export const listAudit = (instanceId: string, cursor: string | null) =>
  call<Page<AuditEntry>>("list_audit", { instanceId, cursor });
