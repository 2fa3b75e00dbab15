import { useSyncExternalStore } from "react";

// Hash routing: real links (`#/teams`), back/forward work, nothing to configure in Tauri.
// A route is `#/<section>` or `#/<section>/<detail>` (e.g. `#/instances/add`).

export type Section = "fleet" | "instances" | "teams" | "consumers" | "plans" | "providers" | "prompt-apis" | "approvals" | "billing" | "doctor" | "alerts" | "logs" | "analytics" | "audit";

export const SECTIONS: readonly { id: Section; label: string }[] = [
  { id: "fleet", label: "Fleet" },
  { id: "instances", label: "Instances" },
  { id: "teams", label: "Teams" },
  { id: "consumers", label: "Consumers" },
  { id: "plans", label: "Plans" },
  { id: "providers", label: "Providers" },
  { id: "prompt-apis", label: "Prompt APIs" },
  { id: "approvals", label: "Approvals" },
  { id: "billing", label: "Billing" },
  { id: "doctor", label: "402 Doctor" },
  { id: "alerts", label: "Alerts" },
  { id: "logs", label: "Logs" },
  { id: "analytics", label: "Analytics" },
  { id: "audit", label: "Audit" },
];

export interface Route {
  section: Section;
  detail: string | null;
}

function parse(hash: string): Route {
  const [first = "", detail] = hash.replace(/^#\/?/, "").split("/");
  const section = SECTIONS.find((s) => s.id === first)?.id ?? "fleet";
  return { section, detail: detail ?? null };
}

function subscribe(onChange: () => void): () => void {
  window.addEventListener("hashchange", onChange);
  return () => window.removeEventListener("hashchange", onChange);
}

export function useRoute(): Route {
  return parse(useSyncExternalStore(subscribe, () => window.location.hash));
}

export function hrefOf(section: Section, detail?: string): string {
  return detail ? `#/${section}/${detail}` : `#/${section}`;
}

/** Goes to a route; `replace` leaves no history entry (closing a form, say). */
export function navigate(section: Section, detail?: string, replace = false): void {
  const href = hrefOf(section, detail);
  if (replace) window.location.replace(href);
  else window.location.hash = href;
}
