// The UI's door to the Rust backend. Every Tauri command has a typed
// function generated from its Rust declaration (`../bindings/commands.ts`,
// re-exported here); the few below give some of them a handier shape for
// the pages (progress callbacks instead of channels, a direction instead of
// a flag). Every rejection is a `BackendError` (see `./ipc`).
import { Channel } from "@tauri-apps/api/core";

import * as commands from "../bindings/commands";
import type { FixAction } from "../bindings/FixAction";
import type { DoctorStart } from "../bindings/DoctorStart";
import type { LogExportFormat } from "../bindings/LogExportFormat";
import type { LogExportProgress } from "../bindings/LogExportProgress";
import type { LogFilter } from "../bindings/LogFilter";
import type { LogSyncProgress } from "../bindings/LogSyncProgress";
import type { PromptRun } from "../bindings/PromptRun";
import type { PromptRunEvent } from "../bindings/PromptRunEvent";

export * from "../bindings/commands";
export { BackendError, type ErrorCode } from "./ipc";

export type SubscriptionActionName = "approve" | "reject" | "cancel" | "suspend" | "resume" | "renew";

/**
 * Runs a definition once on the instance with test values: `onText` gets the answer as it
 * streams; resolves with the summary (serving model, tokens, cost). `runId` names the run for
 * `cancelPromptRun`, after which it rejects with `cancelled`.
 */
export function runPrompt(instanceId: string, runId: string, run: PromptRun, onText: (text: string) => void) {
  const onEvent = new Channel<PromptRunEvent>();
  // Deltas are the only event (the summary is the command's answer).
  onEvent.onmessage = (event) => onText(event.text);
  return commands.runPrompt(instanceId, runId, run, onEvent);
}

/** Syncs now; `onProgress` hears each stored batch and the end. */
export function syncLogs(instanceId: string, onProgress: (p: LogSyncProgress) => void) {
  const onEvent = new Channel<LogSyncProgress>();
  onEvent.onmessage = onProgress;
  return commands.syncLogs(instanceId, onEvent);
}

/** Progress of every sync (the background ones too), until the page reloads. */
export function watchLogSync(onProgress: (p: LogSyncProgress) => void) {
  const onEvent = new Channel<LogSyncProgress>();
  onEvent.onmessage = onProgress;
  return commands.watchLogSync(onEvent);
}

/** Writes the filter's records to `path` (absolute); `onProgress` hears the count written. */
export function exportLogs(
  instanceId: string,
  filter: LogFilter,
  format: LogExportFormat,
  path: string,
  onProgress: (written: number) => void,
) {
  const onEvent = new Channel<LogExportProgress>();
  onEvent.onmessage = (p) => onProgress(p.written);
  return commands.exportLogs(instanceId, filter, format, path, onEvent);
}

/** Moves a key one place in its pool; answers the pool in its new order. */
export const moveProviderKey = (instanceId: string, providerId: string, keyId: string, direction: "up" | "down") =>
  commands.moveProviderKey(instanceId, providerId, keyId, direction === "up");

/** Applies a confirmed one-step fix, then diagnoses again from the same start. */
export const applyFix = (instanceId: string, start: DoctorStart, action: FixAction) =>
  commands.applyFix(instanceId, start, action, true);

/** A reason is required to reject, cancel or suspend (send "" otherwise). */
export const subscriptionAction = (
  instanceId: string,
  subscriptionId: string,
  action: SubscriptionActionName,
  reason: string,
) => commands.subscriptionAction(instanceId, subscriptionId, action, reason);
