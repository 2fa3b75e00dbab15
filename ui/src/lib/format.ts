// Formatting for dense tables: short relative times, plain numbers.

/** "12 s ago", "4 min ago", "3 h ago", "2 d ago" (or "in 5 s" for the future). */
export function relativeTime(iso: string, now: number): string {
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return iso;
  // `now` ticks slowly on some pages; a render caused by new data must not
  // show a just-created row as being in the future.
  const seconds = Math.round((Math.max(now, Date.now()) - then) / 1000);
  const future = seconds < 0;
  const span = Math.abs(seconds);
  let text: string;
  // `now` ticks once a second, so a fresh timestamp can look a second ahead.
  if (span < 2) return "just now";
  if (span < 60) text = `${span} s`;
  else if (span < 3600) text = `${Math.floor(span / 60)} min`;
  else if (span < 86_400) text = `${Math.floor(span / 3600)} h`;
  else text = `${Math.floor(span / 86_400)} d`;
  return future ? `in ${text}` : `${text} ago`;
}

/** Local date and time, for title attributes and audit rows. */
export function absoluteTime(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return date.toLocaleString(undefined, {
    year: "numeric",
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
}

/** A clock skew in ms as "+1.2 s" / "−350 ms". */
export function skew(n: number | undefined): string {
  if (n === undefined) return "—";
  const sign = n > 0 ? "+" : n < 0 ? "−" : "±";
  const abs = Math.abs(n);
  return abs >= 1000 ? `${sign}${(abs / 1000).toFixed(1)} s` : `${sign}${abs} ms`;
}

/** A latency as "7.1 ms" (one decimal under 100 ms, whole ms above). */
export function latency(ms: number | undefined): string {
  if (ms === undefined) return "—";
  return ms < 100 ? `${ms.toFixed(1)} ms` : `${Math.round(ms).toString()} ms`;
}

/** A count with thousands separators, in the user's locale: "1,234,567". */
export function count(n: number): string {
  return n.toLocaleString();
}

/** `part` as a share of `whole`: "12%" ("<1%" and ">99%" near the ends), "" when `whole` is 0. */
export function share(part: number, whole: number): string {
  if (whole <= 0) return "";
  const percent = (part / whole) * 100;
  if (part > 0 && percent < 1) return "<1%";
  if (part < whole && percent > 99) return ">99%";
  return `${Math.round(percent).toString()}%`;
}
