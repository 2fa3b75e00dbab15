import { useInstances } from "../../lib/queries";
import { MOD_LABEL } from "../../lib/platform";
import { hrefOf } from "../../lib/route";

/** What a per-instance page shows when no instance is current. */
export function NoInstance({ what }: { what: string }) {
  const instances = useInstances();
  const none = instances.isSuccess && instances.data.length === 0;
  return (
    <div className="empty">
      {none ? (
        <>
          <p>
            <strong>No instances yet.</strong> Add a gateway to see its {what}.
          </p>
          <a className="button primary" href={hrefOf("instances", "add")}>
            Add an instance
          </a>
        </>
      ) : (
        <p>
          <strong>No instance selected.</strong> Pick one in the sidebar (or press {MOD_LABEL}1) to see its {what}.
        </p>
      )}
    </div>
  );
}
