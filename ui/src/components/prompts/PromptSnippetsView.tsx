import { useState } from "react";

import type { Instance } from "../../bindings/Instance";
import type { PromptApi } from "../../bindings/PromptApi";
import type { PromptSnippets } from "../../bindings/PromptSnippets";
import { copyText } from "../../lib/clipboard";
import { usePromptApiSnippets } from "../../lib/queries";
import { hrefOf } from "../../lib/route";
import { ErrorState } from "../common/ErrorState";
import { useToast } from "../common/Toaster";

const LANGUAGES: readonly { id: keyof Pick<PromptSnippets, "curl" | "python" | "javascript">; label: string }[] = [
  { id: "curl", label: "curl" },
  { id: "python", label: "Python (requests)" },
  { id: "javascript", label: "JavaScript (fetch)" },
];

/** How consumers call the API, ready to copy: curl, Python and JavaScript, with the key read from the environment. */
export function PromptSnippetsView({ instance, api }: { instance: Instance; api: PromptApi }) {
  const snippets = usePromptApiSnippets(instance.id, api.id);
  const toast = useToast();
  const [copied, setCopied] = useState<string | null>(null);

  if (snippets.isPending) return <p className="muted">Preparing the snippets…</p>;
  if (snippets.isError) return <ErrorState what="the snippets" error={snippets.error} onRetry={() => void snippets.refetch()} />;
  const s = snippets.data;

  async function copy(id: string, text: string) {
    if (await copyText(text)) {
      setCopied(id);
      window.setTimeout(() => setCopied((c) => (c === id ? null : c)), 2_000);
    } else {
      toast.info("The clipboard refused the text: select it and copy it by hand.");
    }
  }

  return (
    <section className="detail-section" data-testid="prompt-snippets">
      {api.status === "draft" && (
        <p className="warning" role="note">
          A draft is not served yet: calls answer 404 until the API is published.
        </p>
      )}
      {api.status === "retired" && (
        <p className="warning" role="note">
          This API is retired: calls answer 410 Gone.
        </p>
      )}
      <p>
        Consumers <code>POST</code> to <code className="mono" data-testid="snippet-url">{s.url}</code> with a key whose plan lists{" "}
        <code>{api.slug}</code> under its APIs (<a href={hrefOf("plans")}>Plans</a>). The snippets read the key from the environment variable{" "}
        <code>{s.key_variable}</code>; none holds a key. Required variables show <code>…</code>: fill them in.
      </p>
      {LANGUAGES.map((l) => (
        <div key={l.id} className="snippet">
          <div className="snippet-header">
            <h3>{l.label}</h3>
            <span className="spacer" />
            <button type="button" data-testid={`copy-snippet-${l.id}`} onClick={() => void copy(l.id, s[l.id])}>
              {copied === l.id ? "Copied" : "Copy"}
            </button>
          </div>
          <pre className="snippet-code" data-testid={`snippet-${l.id}`}>
            {s[l.id]}
          </pre>
        </div>
      ))}
    </section>
  );
}
