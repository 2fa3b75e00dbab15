import { absoluteTime, relativeTime } from "../../lib/format";

/** A time as "4 min ago", the full date in its title; `empty` when there is none. */
export function When({ iso, now, empty = "—" }: { iso: string | undefined; now: number; empty?: string }) {
  if (!iso) return <span className="muted">{empty}</span>;
  return (
    <time dateTime={iso} title={absoluteTime(iso)}>
      {relativeTime(iso, now)}
    </time>
  );
}
