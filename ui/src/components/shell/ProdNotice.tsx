import type { Instance } from "../../bindings/Instance";

/** Above every write form: a write to production must be unmistakable. */
export function ProdNotice({ instance }: { instance: Instance }) {
  if (instance.environment !== "prod") {
    return (
      <p className="muted write-target">
        On <strong>{instance.name}</strong> ({instance.environment})
      </p>
    );
  }
  return (
    <p className="prod-notice" role="note">
      <span className="prod-badge">PRODUCTION</span> This changes <strong>{instance.name}</strong>, a production instance.
    </p>
  );
}
