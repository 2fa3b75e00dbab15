import type { Reachability } from "../../bindings/Reachability";

const GLYPHS: Record<Reachability, string> = {
  reachable: "●",
  degraded: "▲",
  unreachable: "✕",
  unknown: "○",
};

/** A reachability state in colour, glyph and word: never colour alone. */
export function StateBadge({ state }: { state: Reachability }) {
  return (
    <span className={`state state-${state}`} data-testid="fleet-state">
      <span className="state-glyph" aria-hidden="true">
        {GLYPHS[state]}
      </span>
      {state}
    </span>
  );
}
