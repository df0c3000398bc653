import { describe, expect, it } from 'vitest';
import type { PresenceSignal } from '../api/schema';
import { applyPresence, here, PRESENT_FOR_MS, typing, TYPING_FOR_MS, typingLine, type Presence } from './presence';

const signal = (user: string, state: PresenceSignal['state'], name = user.toUpperCase()): PresenceSignal => ({
  user,
  name,
  state,
  connection: 'c',
  joined: false,
});

describe('presence', () => {
  it('lists who is here by name and forgets who left or went silent', () => {
    let p: Presence = {};
    p = applyPresence(p, signal('b', 'here', 'Ben'), 0);
    p = applyPresence(p, signal('a', 'here', 'Ada'), 1000);
    expect(here(p, 2000).map((m) => m.name)).toEqual(['Ada', 'Ben']);
    p = applyPresence(p, signal('b', 'left', 'Ben'), 3000);
    expect(here(p, 3000).map((m) => m.name)).toEqual(['Ada']);
    // No heartbeat for too long: gone.
    expect(here(p, 1000 + PRESENT_FOR_MS)).toEqual([]);
  });

  it('shows others typing for a few seconds, never oneself', () => {
    let p: Presence = {};
    p = applyPresence(p, signal('me', 'typing', 'Me'), 0);
    p = applyPresence(p, signal('a', 'typing', 'Ada'), 0);
    expect(typing(p, 1000, 'me').map((m) => m.name)).toEqual(['Ada']);
    // A heartbeat does not cut the typing short…
    p = applyPresence(p, signal('a', 'here', 'Ada'), 2000);
    expect(typing(p, 3000, 'me')).toHaveLength(1);
    // …but it ends by itself.
    expect(typing(p, TYPING_FOR_MS + 1, 'me')).toEqual([]);
  });

  it('says who is typing in plain words', () => {
    const person = (name: string) => ({ user: name, name, seenAt: 0, typingUntil: 1 });
    expect(typingLine([])).toBe('');
    expect(typingLine([person('Ada')])).toBe('Ada is typing…');
    expect(typingLine([person('Ada'), person('Ben')])).toBe('Ada and Ben are typing…');
    expect(typingLine([person('Ada'), person('Ben'), person('Cy')])).toBe('3 people are typing…');
  });
});
