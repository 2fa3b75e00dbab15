import type { Environment } from "../../bindings/Environment";
import { ENV_LABELS } from "../../lib/environment";

/** The instance's colour dot and its environment's name. */
export function EnvDot({ color }: { color: string }) {
  return <span className="env-dot" style={{ backgroundColor: color }} aria-hidden="true" />;
}

export function EnvBadge({ environment, color }: { environment: Environment; color: string }) {
  return (
    <span className={`env-badge env-${environment}`}>
      <EnvDot color={color} />
      {ENV_LABELS[environment]}
    </span>
  );
}
