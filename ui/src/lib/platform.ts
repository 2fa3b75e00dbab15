/** macOS uses ⌘ where other systems use Ctrl. */
export const IS_MAC = /Mac|iPhone|iPad/.test(navigator.userAgent);

/** The shortcut modifier as shown to the user: "⌘1" or "Ctrl+1". */
export const MOD_LABEL = IS_MAC ? "⌘" : "Ctrl+";
