// uPlot builds an `Intl.NumberFormat(navigator.language)` as soon as it is
// loaded. WebKitGTK under the POSIX "C" locale (LANG=C.UTF-8, common on
// servers and in CI) reports `navigator.language` as "C", which Intl rejects
// with a RangeError, and the whole UI would fail to load. Imported before
// uPlot: when the reported language is not a valid tag, report the locale
// the runtime falls back to instead.
function validLocale(): string {
  try {
    return new Intl.NumberFormat().resolvedOptions().locale;
  } catch {
    return "en-US";
  }
}

try {
  new Intl.NumberFormat(navigator.language);
} catch {
  const locale = validLocale();
  Object.defineProperty(navigator, "language", { get: () => locale, configurable: true });
}
