// Light, dark, or the system's choice; remembered in this browser.

export type Theme = 'light' | 'dark' | 'system';

const KEY = 'cairn.theme';

export function storedTheme(): Theme {
  try {
    const value = globalThis.localStorage?.getItem(KEY);
    return value === 'light' || value === 'dark' ? value : 'system';
  } catch {
    return 'system';
  }
}

/** Applies a theme to the page (the `dark` class Tailwind's dark variant follows) and remembers it. */
export function applyTheme(theme: Theme): void {
  const dark = theme === 'dark' || (theme === 'system' && globalThis.matchMedia?.('(prefers-color-scheme: dark)').matches === true);
  globalThis.document?.documentElement.classList.toggle('dark', dark);
  try {
    if (theme === 'system') globalThis.localStorage?.removeItem(KEY);
    else globalThis.localStorage?.setItem(KEY, theme);
  } catch {
    // not remembered
  }
}

export function nextTheme(theme: Theme): Theme {
  return theme === 'system' ? 'light' : theme === 'light' ? 'dark' : 'system';
}
