import { useEffect, useRef } from 'react';

export const SHORTCUTS: ReadonlyArray<[string, string]> = [
  ['Ctrl + Enter (⌘ + Enter)', 'Send the message, or the answer to a question'],
  ['Esc (in the message box)', 'Stop the running agent'],
  ['/', 'Go to the message box'],
  ['?', 'Show these shortcuts'],
];

/** Whether a key press belongs to a text field (shortcuts leave those alone). */
export function typingInField(event: KeyboardEvent): boolean {
  const target = event.target;
  if (!(target instanceof HTMLElement)) return false;
  return target.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName);
}

/** The keyboard shortcuts, in a dialog that Esc or its button closes. */
export function ShortcutHelp({ onClose }: { onClose: () => void }) {
  const close = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    close.current?.focus();
    const onKey = (event: KeyboardEvent) => {
      if (event.key === 'Escape') onClose();
    };
    globalThis.addEventListener('keydown', onKey);
    return () => globalThis.removeEventListener('keydown', onKey);
  }, [onClose]);
  return (
    <div className="fixed inset-0 z-10 flex items-center justify-center bg-black/40 p-4" onClick={onClose}>
      <div
        role="dialog"
        aria-modal="true"
        aria-labelledby="shortcuts-heading"
        className="w-full max-w-md rounded bg-white p-4 shadow dark:bg-gray-900"
        onClick={(e) => e.stopPropagation()}
      >
        <h2 id="shortcuts-heading" className="mb-2 text-lg font-semibold">
          Keyboard shortcuts
        </h2>
        <dl className="grid grid-cols-[max-content_1fr] gap-x-4 gap-y-1 text-sm">
          {SHORTCUTS.map(([keys, what]) => (
            <div key={keys} className="contents">
              <dt>
                <kbd className="rounded border px-1">{keys}</kbd>
              </dt>
              <dd>{what}</dd>
            </div>
          ))}
        </dl>
        <button ref={close} type="button" className="mt-3 rounded border px-3 py-1" onClick={onClose}>
          Close
        </button>
      </div>
    </div>
  );
}
