// The one place that calls `invoke`: the generated commands
// (`../bindings/commands.ts`, one typed function per Tauri command) go
// through `call`, which turns every rejection into a `BackendError`.
import { invoke } from "@tauri-apps/api/core";

import type { ErrorCode as BackendCode } from "../bindings/ErrorCode";
import type { FieldError } from "../bindings/FieldError";
import type { IpcError } from "../bindings/IpcError";

/**
 * The codes a failed command carries: the backend's (generated from its
 * `ErrorCode`), and `ipc` when the call itself failed (no Tauri, unknown
 * command…).
 */
export type ErrorCode = BackendCode | "ipc";

/** A failed backend command: the IpcError `{code, message, fields?}` as an Error. */
export class BackendError extends Error {
  readonly code: ErrorCode;
  readonly fields: FieldError[];

  constructor(code: ErrorCode, message: string, fields: FieldError[] = []) {
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

/** Calls a command; a rejection becomes a `BackendError`. */
export async function call<T>(command: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(command, args);
  } catch (raw: unknown) {
    throw toBackendError(raw);
  }
}
