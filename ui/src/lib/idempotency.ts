import { useRef } from "react";

import type { BackendError } from "./backend";

/** Answers that say for sure what happened: a new attempt after them is a new submission. */
const DEFINITE = new Set([
  "validation",
  "conflict",
  "unauthorized",
  "forbidden",
  "not_found",
  "missing_token",
  "keyring_unavailable",
  "storage",
  "card_error",
]);

/**
 * The idempotency key of a form's submission (as in the team form): the same
 * body submitted again after an answer that left the outcome unknown (timeout,
 * dropped connection) reuses the key, so the gateway replays the first result.
 * A changed body, or a retry after a definite refusal, gets a new key.
 */
export function useIdempotencyKey() {
  const last = useRef<{ body: string; key: string } | null>(null);
  return {
    keyFor(input: unknown): string {
      const body = JSON.stringify(input);
      if (last.current?.body !== body) last.current = { body, key: crypto.randomUUID() };
      return last.current.key;
    },
    settle(error: BackendError) {
      if (DEFINITE.has(error.code)) last.current = null;
    },
  };
}

/** Splits a backend error's `fields` into the ones a form shows inline and whether any are left over. */
export function splitFields<K extends string>(
  error: BackendError,
  known: readonly K[],
): { byField: Partial<Record<K, string>>; other: boolean } {
  const byField: Partial<Record<K, string>> = {};
  let other = false;
  for (const f of error.fields) {
    const k = known.find((x) => x === f.field || f.field.endsWith(`.${x}`));
    if (k) byField[k] = f.message;
    else other = true;
  }
  return { byField, other: other || error.fields.length === 0 };
}
