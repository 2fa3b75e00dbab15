import { useCurrentInstance } from "../../lib/queries";
import { EnvBadge } from "./EnvBadge";

/** Always says where you are; production is unmistakable. */
export function TopBar({ title }: { title: string }) {
  const { instance, isPending } = useCurrentInstance();
  const env = instance?.environment;
  return (
    <header
      className={`topbar ${env ? `topbar-${env}` : "topbar-none"}`}
      style={instance ? { borderBottomColor: instance.color } : undefined}
    >
      <span className="topbar-strip" style={instance ? { backgroundColor: instance.color } : undefined} aria-hidden="true" />
      <h1 className="topbar-title">{title}</h1>
      <div className="topbar-instance">
        {instance ? (
          <>
            {env === "prod" && <span className="prod-badge">PRODUCTION</span>}
            <span className="topbar-name" data-testid="current-instance-name" title={instance.base_url}>
              {instance.name}
            </span>
            <EnvBadge environment={instance.environment} color={instance.color} />
          </>
        ) : (
          <span className="muted" data-testid="current-instance-name">
            {isPending ? "" : "No instance selected"}
          </span>
        )}
      </div>
    </header>
  );
}
