// Short notes that come and go (a link copied, a run shared, an error in
// words), on Radix's toast primitive: announced to screen readers, paused
// while hovered or focused, dismissed with a swipe, Escape or the button.

import * as ToastPrimitive from '@radix-ui/react-toast';
import { create } from 'zustand';
import { cx, focusRing } from './ui';

export interface Toast {
  id: number;
  text: string;
  tone: 'info' | 'error';
}

interface Toasts {
  toasts: Toast[];
  push: (text: string, tone?: Toast['tone']) => void;
  dismiss: (id: number) => void;
}

let next = 0;

export const useToasts = create<Toasts>()((set) => ({
  toasts: [],
  push: (text, tone = 'info') => {
    next += 1;
    const id = next;
    set((state) => ({ toasts: [...state.toasts.slice(-3), { id, text, tone }] }));
  },
  dismiss: (id) => set((state) => ({ toasts: state.toasts.filter((t) => t.id !== id) })),
}));

/** Tells the person something in passing. */
export function toast(text: string, tone: Toast['tone'] = 'info'): void {
  useToasts.getState().push(text, tone);
}

/** Copies `text` to the clipboard and says so; `what` names it ("the link"). */
export async function copyText(text: string, what: string): Promise<void> {
  try {
    await navigator.clipboard.writeText(text);
    toast(`${what[0]?.toUpperCase() ?? ''}${what.slice(1)} was copied.`);
  } catch {
    toast(`Copying was refused: select ${what} and copy it by hand.`, 'error');
  }
}

export function Toaster() {
  const { toasts, dismiss } = useToasts();
  return (
    <ToastPrimitive.Provider swipeDirection="right" duration={5000}>
      {toasts.map((t) => (
        <ToastPrimitive.Root
          key={t.id}
          type={t.tone === 'error' ? 'foreground' : 'background'}
          onOpenChange={(open) => {
            if (!open) dismiss(t.id);
          }}
          className={cx(
            'flex items-start gap-3 rounded-lg border p-3 text-sm shadow-lg',
            t.tone === 'error'
              ? 'border-red-300 bg-red-50 text-red-950 dark:border-red-800 dark:bg-red-950 dark:text-red-100'
              : 'border-zinc-200 bg-white text-zinc-900 dark:border-zinc-700 dark:bg-zinc-900 dark:text-zinc-100',
          )}
        >
          <ToastPrimitive.Description className="flex-1">{t.text}</ToastPrimitive.Description>
          <ToastPrimitive.Close aria-label="Dismiss" className={cx('rounded px-1 text-zinc-600 dark:text-zinc-300', focusRing)}>
            ✕
          </ToastPrimitive.Close>
        </ToastPrimitive.Root>
      ))}
      <ToastPrimitive.Viewport className="fixed right-4 bottom-4 z-50 flex w-80 max-w-[calc(100vw-2rem)] flex-col gap-2 outline-none" />
    </ToastPrimitive.Provider>
  );
}
