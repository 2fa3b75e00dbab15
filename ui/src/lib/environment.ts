import type { Environment } from "../bindings/Environment";

export const ENVIRONMENTS: readonly Environment[] = ["prod", "staging", "dev"];

/** The default colour of each environment (an instance may pick its own). */
export const ENV_COLORS: Record<Environment, string> = {
  prod: "#d73a49",
  staging: "#d9822b",
  dev: "#2e8b57",
};

export const ENV_LABELS: Record<Environment, string> = {
  prod: "prod",
  staging: "staging",
  dev: "dev",
};
