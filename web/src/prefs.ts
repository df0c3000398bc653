// Client state shared across the app (Zustand): the person's preferences in
// this browser. Server state lives in TanStack Query, not here.

import { create } from 'zustand';
import { applyTheme, nextTheme, storedTheme, type Theme } from './theme';

interface Prefs {
  theme: Theme;
  /** Light → dark → the system's choice → light…, applied and remembered. */
  cycleTheme: () => void;
  /** Whether the keyboard shortcut help is open. */
  shortcutsOpen: boolean;
  showShortcuts: (open: boolean) => void;
  /** Whether the sidebar is folded away (wide screens; phones use a drawer). */
  sidebarHidden: boolean;
  toggleSidebar: () => void;
}

const SIDEBAR_KEY = 'cairn.sidebar';

function storedSidebar(): boolean {
  try {
    return globalThis.localStorage?.getItem(SIDEBAR_KEY) === 'hidden';
  } catch {
    return false;
  }
}

export const usePrefs = create<Prefs>()((set, get) => ({
  theme: storedTheme(),
  cycleTheme: () => {
    const theme = nextTheme(get().theme);
    applyTheme(theme);
    set({ theme });
  },
  shortcutsOpen: false,
  showShortcuts: (open) => set({ shortcutsOpen: open }),
  sidebarHidden: storedSidebar(),
  toggleSidebar: () => {
    const hidden = !get().sidebarHidden;
    try {
      if (hidden) globalThis.localStorage?.setItem(SIDEBAR_KEY, 'hidden');
      else globalThis.localStorage?.removeItem(SIDEBAR_KEY);
    } catch {
      // not remembered
    }
    set({ sidebarHidden: hidden });
  },
}));
