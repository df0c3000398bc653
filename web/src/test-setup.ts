import { cleanup } from '@testing-library/react';
import { afterEach } from 'vitest';

// Vitest globals are off, so Testing Library cannot register this itself.
afterEach(() => {
  cleanup();
});

// jsdom measures nothing; components that watch their size (Radix's slider)
// only need the observer to exist.
globalThis.ResizeObserver ??= class {
  observe(): void {}
  unobserve(): void {}
  disconnect(): void {}
};
