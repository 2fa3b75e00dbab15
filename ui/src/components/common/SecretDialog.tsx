import { useState } from "react";

import type { IssuedConsumerKey } from "../../bindings/IssuedConsumerKey";
import { Dialog } from "./Dialog";

/**
 * Shows a newly issued key's secret, once. Closing it forgets the secret: the
 * gateway keeps only a hash, so nobody can show it again.
 */
export function SecretDialog({ issued, title, onClose }: { issued: IssuedConsumerKey; title: string; onClose: () => void }) {
  const [copied, setCopied] = useState<"yes" | "failed" | null>(null);

  async function copy(secret: string) {
    try {
      await navigator.clipboard.writeText(secret);
      setCopied("yes");
    } catch {
      setCopied("failed");
    }
  }

  return (
    <Dialog title={title} onClose={onClose} wide>
      {issued.secret ? (
        <>
          <p>
            <strong>Copy this key now — you will not see it again.</strong> The gateway stores only a hash of it.
            Hand it to the consumer&apos;s developer over a secure channel.
          </p>
          <div className="secret-box">
            <code data-testid="revealed-secret">{issued.secret}</code>
            <button type="button" className="primary" data-testid="copy-secret" onClick={() => void copy(issued.secret ?? "")} data-autofocus>
              {copied === "yes" ? "Copied" : "Copy"}
            </button>
          </div>
          {copied === "failed" && (
            <p className="error-text" role="alert">
              Could not write to the clipboard: select the key above and copy it by hand.
            </p>
          )}
        </>
      ) : (
        <p className="warning-text" role="alert">
          The gateway answered without the secret (this was a replay of an earlier request, and it keeps only a hash).
          If the secret was not saved, revoke key “{issued.key.name}” and issue a new one.
        </p>
      )}
      <p className="muted">
        Key “{issued.key.name}” · prefix <span className="mono">{issued.key.display_prefix}</span> · id{" "}
        <span className="mono">{issued.key.id}</span>
      </p>
      <div className="dialog-actions">
        <span className="spacer" />
        <button type="button" data-testid="close-secret" onClick={onClose}>
          {issued.secret ? "I have saved it — close" : "Close"}
        </button>
      </div>
    </Dialog>
  );
}
