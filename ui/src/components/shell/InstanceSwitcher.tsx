import { useEffect, useEffectEvent } from "react";

import { ENV_LABELS } from "../../lib/environment";
import { IS_MAC, MOD_LABEL } from "../../lib/platform";
import { useCurrentInstanceId, useInstances, useSwitchInstance } from "../../lib/queries";
import { EnvDot } from "./EnvBadge";
import { useToast } from "../common/Toaster";


/** The sidebar's instance list: click or Ctrl+1…Ctrl+9 makes one current. */
export function InstanceSwitcher() {
  const instances = useInstances();
  const current = useCurrentInstanceId();
  const switcher = useSwitchInstance();
  const toast = useToast();
  const list = instances.data ?? [];

  const switchTo = (id: string) => {
    if (id === current.data) return;
    switcher.mutate(id, {
      onError: (error) => toast.error("Could not switch instance", error),
    });
  };

  // Ctrl+1…Ctrl+9 (⌘ on macOS) switches to the Nth instance, from anywhere.
  const onShortcut = useEffectEvent((e: KeyboardEvent) => {
    if (!(IS_MAC ? e.metaKey : e.ctrlKey) || e.altKey || e.shiftKey) return;
    if (!/^[1-9]$/.test(e.key)) return;
    // Not behind an open dialog: switching would throw away what is being typed there.
    if (document.querySelector("dialog[open]")) return;
    const target = list[Number(e.key) - 1];
    if (!target) return;
    e.preventDefault();
    switchTo(target.id);
  });
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => onShortcut(e);
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);

  return (
    <nav className="switcher" aria-label="Instances" data-testid="instance-switcher">
      <h2 className="sidebar-heading">Instances</h2>
      {instances.isPending && <p className="sidebar-note">Loading…</p>}
      {instances.isError && <p className="sidebar-note error-text">{instances.error.message}</p>}
      {instances.isSuccess && list.length === 0 && <p className="sidebar-note">None yet.</p>}
      <ul>
        {list.map((instance, index) => {
          const active = instance.id === current.data;
          return (
            <li key={instance.id}>
              <button
                type="button"
                className={active ? "switch switch-active" : "switch"}
                data-testid={`switch-${index}`}
                aria-current={active ? "true" : undefined}
                onClick={() => switchTo(instance.id)}
                title={`${instance.name} (${instance.base_url})`}
              >
                <EnvDot color={instance.color} />
                <span className="switch-name">{instance.name}</span>
                <span className={`switch-env env-text-${instance.environment}`}>{ENV_LABELS[instance.environment]}</span>
                {index < 9 && (
                  <kbd className="switch-key" aria-label={`shortcut ${MOD_LABEL}${index + 1}`}>
                    {MOD_LABEL}
                    {index + 1}
                  </kbd>
                )}
              </button>
            </li>
          );
        })}
      </ul>
    </nav>
  );
}
