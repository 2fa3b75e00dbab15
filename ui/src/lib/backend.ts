// The one adapter between the UI and the Rust backend: the only module that
// calls `invoke`. One typed function per Tauri command; every rejection
// becomes a `BackendError`.
import { Channel, invoke } from "@tauri-apps/api/core";

import type { AddPaymentMethod } from "../bindings/AddPaymentMethod";
import type { AuditEntry } from "../bindings/AuditEntry";
import type { BillingCheck } from "../bindings/BillingCheck";
import type { CallLog } from "../bindings/CallLog";
import type { CallStats } from "../bindings/CallStats";
import type { Charge } from "../bindings/Charge";
import type { ConnectionReport } from "../bindings/ConnectionReport";
import type { Consumer } from "../bindings/Consumer";
import type { ConsumerKey } from "../bindings/ConsumerKey";
import type { CreateConsumer } from "../bindings/CreateConsumer";
import type { CreateConsumerKey } from "../bindings/CreateConsumerKey";
import type { CreateLedgerEntry } from "../bindings/CreateLedgerEntry";
import type { CreatePlan } from "../bindings/CreatePlan";
import type { CreatePromptApi } from "../bindings/CreatePromptApi";
import type { Alert } from "../bindings/Alert";
import type { AlertReport } from "../bindings/AlertReport";
import type { AlertRules } from "../bindings/AlertRules";
import type { AppliedFix } from "../bindings/AppliedFix";
import type { Diagnosis } from "../bindings/Diagnosis";
import type { DiffLine } from "../bindings/DiffLine";
import type { DoctorStart } from "../bindings/DoctorStart";
import type { FixAction } from "../bindings/FixAction";
import type { FixOutcome } from "../bindings/FixOutcome";
import type { PromptApi } from "../bindings/PromptApi";
import type { PromptApiAction } from "../bindings/PromptApiAction";
import type { PromptApiVersion } from "../bindings/PromptApiVersion";
import type { PromptDefinition } from "../bindings/PromptDefinition";
import type { PromptPreview } from "../bindings/PromptPreview";
import type { PromptRun } from "../bindings/PromptRun";
import type { PromptRunEvent } from "../bindings/PromptRunEvent";
import type { PromptRunSummary } from "../bindings/PromptRunSummary";
import type { PromptSnippets } from "../bindings/PromptSnippets";
import type { CreateProvider } from "../bindings/CreateProvider";
import type { CreateProviderKey } from "../bindings/CreateProviderKey";
import type { CreateSubscription } from "../bindings/CreateSubscription";
import type { CreateTeam } from "../bindings/CreateTeam";
import type { FieldError } from "../bindings/FieldError";
import type { FleetBreakdownQuery } from "../bindings/FleetBreakdownQuery";
import type { FleetBreakdownRow } from "../bindings/FleetBreakdownRow";
import type { FleetLogQuery } from "../bindings/FleetLogQuery";
import type { FleetLogSeries } from "../bindings/FleetLogSeries";
import type { FleetLogStats } from "../bindings/FleetLogStats";
import type { FleetValueSeries } from "../bindings/FleetValueSeries";
import type { FleetEntry } from "../bindings/FleetEntry";
import type { Instance } from "../bindings/Instance";
import type { InstanceInput } from "../bindings/InstanceInput";
import type { IpcError } from "../bindings/IpcError";
import type { IssuedConsumerKey } from "../bindings/IssuedConsumerKey";
import type { KeyringStatus } from "../bindings/KeyringStatus";
import type { LedgerEntry } from "../bindings/LedgerEntry";
import type { LogCacheCheck } from "../bindings/LogCacheCheck";
import type { LogCacheInfo } from "../bindings/LogCacheInfo";
import type { LogExportFormat } from "../bindings/LogExportFormat";
import type { LogExportProgress } from "../bindings/LogExportProgress";
import type { LogExportSummary } from "../bindings/LogExportSummary";
import type { LogFilter } from "../bindings/LogFilter";
import type { LogPage } from "../bindings/LogPage";
import type { LogStatsQuery } from "../bindings/LogStatsQuery";
import type { LogSyncEvent } from "../bindings/LogSyncEvent";
import type { LogSyncProgress } from "../bindings/LogSyncProgress";
import type { LogSyncReport } from "../bindings/LogSyncReport";
import type { LogExportTarget } from "../bindings/LogExportTarget";
import type { SavedLogFilter } from "../bindings/SavedLogFilter";
import type { SaveLogFilter } from "../bindings/SaveLogFilter";
import type { Page } from "../bindings/Page";
import type { PaymentMethod } from "../bindings/PaymentMethod";
import type { PaymentSettings } from "../bindings/PaymentSettings";
import type { Plan } from "../bindings/Plan";
import type { Provider } from "../bindings/Provider";
import type { ProviderKey } from "../bindings/ProviderKey";
import type { ProviderKeyEvent } from "../bindings/ProviderKeyEvent";
import type { ProviderTest } from "../bindings/ProviderTest";
import type { Subscription } from "../bindings/Subscription";
import type { Team } from "../bindings/Team";
import type { UpdateConsumer } from "../bindings/UpdateConsumer";
import type { UpdatePaymentSettings } from "../bindings/UpdatePaymentSettings";
import type { UpdatePlan } from "../bindings/UpdatePlan";
import type { UpdateProvider } from "../bindings/UpdateProvider";
import type { UpdateProviderKey } from "../bindings/UpdateProviderKey";
import type { UpdateTeam } from "../bindings/UpdateTeam";
import type { Wallet } from "../bindings/Wallet";

/** The codes the UI branches on (the backend may send others). */
export type ErrorCode =
  | "validation"
  /** Too many of something (e.g. saved filters on one instance). */
  | "limit_reached"
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
  /** The payment processor refused the card (the message carries its codes). */
  | "card_error"
  /** A prompt run or a log sync stopped by the admin. */
  | "cancelled"
  /** The gateway's log export held a line that is not a record (what came before it is cached). */
  | "log_malformed_record"
  /** The gateway's log export is not one (no head header, …). */
  | "log_malformed_page"
  /** The export stopped mid-record; the next sync resumes. */
  | "log_truncated"
  /** The gateway's log went back (it was reset): rebuild the cache to follow it. */
  | "log_went_back"
  /** The instance's URL leads to another gateway now: rebuild the cache to follow it. */
  | "gateway_changed"
  /** The log cache was damaged; it was set aside and is being rebuilt. */
  | "cache_corrupt"
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

// ---- Consumers -----------------------------------------------------------

/** `teamId` null lists the consumers of every team. */
export const listConsumers = (instanceId: string, teamId: string | null, cursor: string | null) =>
  call<Page<Consumer>>("list_consumers", { instanceId, teamId, cursor });

export const createConsumer = (instanceId: string, input: CreateConsumer, idempotencyKey: string) =>
  call<Consumer>("create_consumer", { instanceId, input, idempotencyKey });

/** `version` is the consumer's version as read; a stale one fails with `precondition_failed`. */
export const updateConsumer = (instanceId: string, consumerId: string, patch: UpdateConsumer, version: number) =>
  call<Consumer>("update_consumer", { instanceId, consumerId, patch, version });

// ---- Consumer keys -------------------------------------------------------

export const listConsumerKeys = (instanceId: string, consumerId: string) =>
  call<Page<ConsumerKey>>("list_consumer_keys", { instanceId, consumerId });

/** The answer's `secret` is shown once: the gateway keeps only a hash. */
export const createConsumerKey = (instanceId: string, consumerId: string, input: CreateConsumerKey, idempotencyKey: string) =>
  call<IssuedConsumerKey>("create_consumer_key", { instanceId, consumerId, input, idempotencyKey });

/** Issues a replacement; the old key keeps working for `graceSeconds` (0 to 604800). */
export const rotateConsumerKey = (instanceId: string, keyId: string, graceSeconds: number) =>
  call<IssuedConsumerKey>("rotate_consumer_key", { instanceId, keyId, graceSeconds });

export const revokeConsumerKey = (instanceId: string, keyId: string) =>
  call<ConsumerKey>("revoke_consumer_key", { instanceId, keyId });

/** Keys whose display prefix starts with `prefix` (`tg_ab12…`). */
export const findKeys = (instanceId: string, prefix: string) =>
  call<Page<ConsumerKey>>("find_keys", { instanceId, prefix });

// ---- Plans ---------------------------------------------------------------

export const listPlans = (instanceId: string, cursor: string | null) =>
  call<Page<Plan>>("list_plans", { instanceId, cursor });

export const createPlan = (instanceId: string, input: CreatePlan, idempotencyKey: string) =>
  call<Plan>("create_plan", { instanceId, input, idempotencyKey });

/** Guarded by the `version` the admin saw; the currency never changes. */
export const updatePlan = (instanceId: string, planId: string, update: UpdatePlan, version: number) =>
  call<Plan>("update_plan", { instanceId, planId, update, version });

/** Refused with `conflict` while anyone subscribes to the plan. */
export const deletePlan = (instanceId: string, planId: string, version: number) =>
  call<null>("delete_plan", { instanceId, planId, version });

// ---- Providers and their key pools -----------------------------------------

export const listProviders = (instanceId: string, cursor: string | null) =>
  call<Page<Provider>>("list_providers", { instanceId, cursor });

/** A model another provider already serves fails with `conflict`. */
export const createProvider = (instanceId: string, input: CreateProvider, idempotencyKey: string) =>
  call<Provider>("create_provider", { instanceId, input, idempotencyKey });

/** Guarded by the `version` the admin saw; a stale one fails with `precondition_failed`. */
export const updateProvider = (instanceId: string, providerId: string, update: UpdateProvider, version: number) =>
  call<Provider>("update_provider", { instanceId, providerId, update, version });

/** Deletes the provider and every key of its pool. */
export const deleteProvider = (instanceId: string, providerId: string, version: number) =>
  call<null>("delete_provider", { instanceId, providerId, version });

/** Asks the provider for its model list with the pool's first usable key; no key's status changes. */
export const testProvider = (instanceId: string, providerId: string) =>
  call<ProviderTest>("test_provider", { instanceId, providerId });

/** The pool in the order its keys are tried, each with its use (requests, failures, tokens). */
export const listProviderKeys = (instanceId: string, providerId: string) =>
  call<ProviderKey[]>("list_provider_keys", { instanceId, providerId });

/** The secret goes to the gateway and is never shown again: the answer has its last 4 only. */
export const addProviderKey = (instanceId: string, providerId: string, input: CreateProviderKey) =>
  call<ProviderKey>("add_provider_key", { instanceId, providerId, input });

/** An admin may set `active` or `disabled`; a `reason` goes with a status change. */
export const updateProviderKey = (instanceId: string, keyId: string, update: UpdateProviderKey, version: number) =>
  call<ProviderKey>("update_provider_key", { instanceId, keyId, update, version });

/** Moves a key one place in its pool; answers the pool in its new order. */
export const moveProviderKey = (instanceId: string, providerId: string, keyId: string, direction: "up" | "down") =>
  call<ProviderKey[]>("move_provider_key", { instanceId, providerId, keyId, up: direction === "up" });

export const deleteProviderKey = (instanceId: string, keyId: string, version: number) =>
  call<null>("delete_provider_key", { instanceId, keyId, version });

/** Status changes of the pool's keys, newest first; `keyId` null means every key. */
export const listProviderKeyEvents = (instanceId: string, providerId: string, keyId: string | null, limit: number) =>
  call<ProviderKeyEvent[]>("list_provider_key_events", { instanceId, providerId, keyId, limit });

// ---- Prompt APIs -----------------------------------------------------------

export const listPromptApis = (instanceId: string, cursor: string | null) =>
  call<Page<PromptApi>>("list_prompt_apis", { instanceId, cursor });

export const getPromptApi = (instanceId: string, apiId: string) => call<PromptApi>("get_prompt_api", { instanceId, apiId });

/** A draft with its first version; a taken slug fails with `conflict`. */
export const createPromptApi = (instanceId: string, input: CreatePromptApi, idempotencyKey: string) =>
  call<PromptApi>("create_prompt_api", { instanceId, input, idempotencyKey });

/** Every version, newest first. */
export const listPromptApiVersions = (instanceId: string, apiId: string) =>
  call<PromptApiVersion[]>("list_prompt_api_versions", { instanceId, apiId });

/** A new version, served from now on; guarded by the API's `version` as read. */
export const addPromptApiVersion = (instanceId: string, apiId: string, definition: PromptDefinition, version: number) =>
  call<PromptApi>("add_prompt_api_version", { instanceId, apiId, definition, version });

/** Publish, deprecate (sunset in the future), retire, or roll back; guarded by the API's `version`. */
export const changePromptApiLifecycle = (instanceId: string, apiId: string, action: PromptApiAction, version: number) =>
  call<PromptApi>("change_prompt_api_lifecycle", { instanceId, apiId, action, version });

/** curl, Python and JavaScript calls of the API against the gateway's public URL; no key inside. */
export const promptApiSnippets = (instanceId: string, apiId: string) =>
  call<PromptSnippets>("prompt_api_snippets", { instanceId, apiId });

/** The rendered prompt, piece by piece, and what saving the definition would be refused for (computed locally). */
export const previewPrompt = (definition: PromptDefinition, values: Record<string, string>) =>
  call<PromptPreview>("preview_prompt", { definition, values });

/** The line diff from one definition to another. */
export const diffPromptDefinitions = (old: PromptDefinition, next: PromptDefinition) =>
  call<DiffLine[]>("diff_prompt_definitions", { old, new: next });

/**
 * Runs a definition once on the instance with test values: `onText` gets the answer as it
 * streams; resolves with the summary (serving model, tokens, cost). `runId` names the run for
 * `cancelPromptRun`, after which it rejects with `cancelled`.
 */
export function runPrompt(instanceId: string, runId: string, run: PromptRun, onText: (text: string) => void): Promise<PromptRunSummary> {
  const onEvent = new Channel<PromptRunEvent>();
  // Deltas are the only event (the summary is the command's answer).
  onEvent.onmessage = (event) => onText(event.text);
  return call<PromptRunSummary>("run_prompt", { instanceId, runId, run, onEvent });
}

/** False when the run had already ended. */
export const cancelPromptRun = (runId: string) => call<boolean>("cancel_prompt_run", { runId });

// ---- Subscriptions -------------------------------------------------------

export type SubscriptionActionName = "approve" | "reject" | "cancel" | "suspend" | "resume" | "renew";

/** `status` and `consumerId` null mean "any". */
export const listSubscriptions = (
  instanceId: string,
  status: string | null,
  consumerId: string | null,
  cursor: string | null,
) => call<Page<Subscription>>("list_subscriptions", { instanceId, status, consumerId, cursor });

export const createSubscription = (instanceId: string, input: CreateSubscription, idempotencyKey: string) =>
  call<Subscription>("create_subscription", { instanceId, input, idempotencyKey });

/** A reason is required to reject, cancel or suspend (send "" otherwise). */
export const subscriptionAction = (
  instanceId: string,
  subscriptionId: string,
  action: SubscriptionActionName,
  reason: string,
) => call<Subscription>("subscription_action", { instanceId, subscriptionId, action, reason });

export const changeSubscriptionPlan = (instanceId: string, subscriptionId: string, planId: string) =>
  call<Subscription>("change_subscription_plan", { instanceId, subscriptionId, planId });

// ---- Payment settings of the gateway ---------------------------------------

export const paymentSettings = (instanceId: string) => call<PaymentSettings>("payment_settings", { instanceId });

/** Guarded by the `version` the admin saw; a stale one fails with `precondition_failed`. */
export const updatePaymentSettings = (instanceId: string, update: UpdatePaymentSettings, version: number) =>
  call<PaymentSettings>("update_payment_settings", { instanceId, update, version });

export const checkBilling = (instanceId: string) => call<BillingCheck>("check_billing", { instanceId });

// ---- Payment methods and charges -----------------------------------------

export const listPaymentMethods = (instanceId: string, consumerId: string) =>
  call<PaymentMethod[]>("list_payment_methods", { instanceId, consumerId });

/** A refused card fails with `card_error`, its message naming the processor's codes. */
export const addPaymentMethod = (instanceId: string, consumerId: string, card: AddPaymentMethod) =>
  call<PaymentMethod>("add_payment_method", { instanceId, consumerId, card });

export const setDefaultPaymentMethod = (instanceId: string, methodId: string) =>
  call<PaymentMethod>("set_default_payment_method", { instanceId, methodId });

export const removePaymentMethod = (instanceId: string, methodId: string) =>
  call<null>("remove_payment_method", { instanceId, methodId });

export const listCharges = (instanceId: string, consumerId: string, cursor: string | null) =>
  call<Page<Charge>>("list_charges", { instanceId, consumerId, cursor });

// ---- Wallets -------------------------------------------------------------

export const listWallets = (instanceId: string, consumerId: string) =>
  call<Wallet[]>("list_wallets", { instanceId, consumerId });

export const listLedger = (instanceId: string, consumerId: string, currency: string, cursor: string | null) =>
  call<Page<LedgerEntry>>("list_ledger", { instanceId, consumerId, currency, cursor });

export const createLedgerEntry = (
  instanceId: string,
  consumerId: string,
  currency: string,
  input: CreateLedgerEntry,
  idempotencyKey: string,
) => call<LedgerEntry>("create_ledger_entry", { instanceId, consumerId, currency, input, idempotencyKey });

// ---- Call-log cache ------------------------------------------------------
// Everything but the sync reads the local cache: it works offline.

/** Syncs now; `onProgress` hears each stored batch and the end. */
export function syncLogs(instanceId: string, onProgress: (p: LogSyncProgress) => void): Promise<LogSyncReport> {
  const onEvent = new Channel<LogSyncProgress>();
  onEvent.onmessage = onProgress;
  return call<LogSyncReport>("sync_logs", { instanceId, onEvent });
}

/** False when no sync was running. */
export const cancelLogSync = (instanceId: string) => call<boolean>("cancel_log_sync", { instanceId });

/** Progress of every sync (the background ones too), until the page reloads. */
export function watchLogSync(onProgress: (p: LogSyncProgress) => void): Promise<null> {
  const onEvent = new Channel<LogSyncProgress>();
  onEvent.onmessage = onProgress;
  return call<null>("watch_log_sync", { onEvent });
}

/** Newest first; pass `nextBefore` as `before` for the next page. */
export const logPage = (instanceId: string, filter: LogFilter, before: number | null, limit: number | null) =>
  call<LogPage>("log_page", { instanceId, filter, before, limit });

export const logRecord = (instanceId: string, seq: number) => call<CallLog>("log_record", { instanceId, seq });

/** The gateway's `/admin/v1/logs/stats`, from the cache. */
export const logStats = (instanceId: string, query: LogStatsQuery) =>
  call<CallStats>("log_stats", { instanceId, query });

export const logCaches = () => call<LogCacheInfo[]>("log_caches");

export const logCacheInfo = (instanceId: string) => call<LogCacheInfo>("log_cache_info", { instanceId });

/** `null` days keeps everything; older records are purged now and after each sync. */
export const setLogRetention = (instanceId: string, days: number | null) =>
  call<LogCacheInfo>("set_log_retention", { instanceId, days });

/** Answers how many records were deleted. */
export const purgeLogCache = (instanceId: string, days: number) =>
  call<number>("purge_log_cache", { instanceId, days });

export const vacuumLogCache = (instanceId: string) => call<LogCacheInfo>("vacuum_log_cache", { instanceId });

export const checkLogCache = (instanceId: string) => call<LogCacheCheck>("check_log_cache", { instanceId });

/** Empties the cache and syncs it again from the start of the gateway's log. */
export const rebuildLogCache = (instanceId: string) => call<LogCacheInfo>("rebuild_log_cache", { instanceId });

export const logSyncEvents = (instanceId: string, limit: number | null) =>
  call<LogSyncEvent[]>("log_sync_events", { instanceId, limit });

/** Writes the filter's records to `path` (absolute); `onProgress` hears the count written. */
export function exportLogs(
  instanceId: string,
  filter: LogFilter,
  format: LogExportFormat,
  path: string,
  onProgress: (written: number) => void,
): Promise<LogExportSummary> {
  const onEvent = new Channel<LogExportProgress>();
  onEvent.onmessage = (p) => onProgress(p.written);
  return call<LogExportSummary>("export_logs", { instanceId, filter, format, path, onEvent });
}

// ---- The log explorer's saved filters and export target --------------------
// Saved filters live in the console's own database, per instance.

/** By name; one whose stored filter no longer passes the checks carries a `problem`. */
export const listSavedLogFilters = (instanceId: string) =>
  call<SavedLogFilter[]>("list_saved_log_filters", { instanceId });

/** A name in use on the instance (ignoring case) fails with `conflict`. */
export const saveLogFilter = (instanceId: string, input: SaveLogFilter) =>
  call<SavedLogFilter>("save_log_filter", { instanceId, input });

export const deleteSavedLogFilter = (instanceId: string, filterId: string) =>
  call<null>("delete_saved_log_filter", { instanceId, filterId });

/** The folder an export is proposed in (downloads, else home); null when there is none. */
export const logExportDir = () => call<string | null>("log_export_dir");

/** Checks an export path (absolute, in an existing folder) and says whether a file is there. */
export const checkLogExportPath = (path: string) => call<LogExportTarget>("check_log_export_path", { path });

// ---- Analytics: several instances' caches merged (a scope of one is a fleet too) ----

/** Totals of the range over the instances' caches (all by default), each instance's part and sync state beside them. */
export const fleetLogStats = (query: FleetLogQuery) => call<FleetLogStats>("fleet_log_stats", { query });

/** Points only for buckets with calls; `bucket_seconds` is the bucket used. */
export const fleetLogSeries = (query: FleetLogQuery) => call<FleetLogSeries>("fleet_log_series", { query });

/** Consumer rows carry their instance (consumer ids are per gateway). */
export const fleetLogBreakdown = (query: FleetBreakdownQuery) =>
  call<FleetBreakdownRow[]>("fleet_log_breakdown", { query });

export const fleetLogBreakdownSeries = (query: FleetBreakdownQuery) =>
  call<FleetValueSeries[]>("fleet_log_breakdown_series", { query });

// ---- The 402 doctor -------------------------------------------------------

/** Why a consumer's calls are refused: live from the instance, or from the cache when it is unreachable. */
export const diagnose = (instanceId: string, start: DoctorStart) => call<Diagnosis>("diagnose", { instanceId, start });

/** Applies a confirmed one-step fix, then diagnoses again from the same start. */
export const applyFix = (instanceId: string, start: DoctorStart, action: FixAction) =>
  call<FixOutcome>("apply_fix", { instanceId, start, action, confirmed: true });

/** The fixes applied from this console to the instance, newest first. */
export const listDoctorFixes = (instanceId: string) => call<AppliedFix[]>("list_doctor_fixes", { instanceId });

// ---- Prevention: alerts ---------------------------------------------------

/** Alerts of one instance (or every instance), newest first; resolved ones only when asked. */
export const listAlerts = (instanceId: string | null, includeResolved: boolean) =>
  call<Alert[]>("list_alerts", { instanceId, includeResolved });

/** Runs the instance's rules now (they also run in the background every 5 minutes). */
export const evaluateAlerts = (instanceId: string) => call<AlertReport>("evaluate_alerts", { instanceId });

/** Hides an alert until `until` (an hour to 90 days ahead). */
export const snoozeAlert = (alertId: number, until: string) => call<Alert>("snooze_alert", { alertId, until });

export const resolveAlert = (alertId: number) => call<Alert>("resolve_alert", { alertId });

export const alertRules = (instanceId: string) => call<AlertRules>("alert_rules", { instanceId });

export const setAlertRules = (instanceId: string, rules: AlertRules) =>
  call<AlertRules>("set_alert_rules", { instanceId, rules });
