/**
 * Copies text to the clipboard: the async Clipboard API where the webview grants it, else the
 * older selection-and-copy route (WebKitGTK may refuse the former). Resolves whether it worked.
 */
export async function copyText(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.append(area);
    area.select();
    try {
      // Deprecated, but the one route left when the Clipboard API is refused.
      // eslint-disable-next-line @typescript-eslint/no-deprecated
      return document.execCommand("copy");
    } finally {
      area.remove();
    }
  }
}
