import { describe, expect, it } from 'vitest';
import type { PresenceSnapshot } from '../api/schema';
import { othersTyping, typingLine } from './presence';

const member = (user: string, name = user.toUpperCase()) => ({ user, name });

describe('presence', () => {
  it('shows the others typing, never oneself', () => {
    const state: PresenceSnapshot = { here: [member('a', 'Ada'), member('me', 'Me')], typing: [member('me', 'Me'), member('a', 'Ada')] };
    expect(othersTyping(state, 'me').map((m) => m.name)).toEqual(['Ada']);
    expect(othersTyping(state, undefined)).toHaveLength(2);
  });

  it('says who is typing in plain words', () => {
    expect(typingLine([])).toBe('');
    expect(typingLine([member('a', 'Ada')])).toBe('Ada is typing…');
    expect(typingLine([member('a', 'Ada'), member('b', 'Ben')])).toBe('Ada and Ben are typing…');
    expect(typingLine([member('a', 'Ada'), member('b', 'Ben'), member('c', 'Cy')])).toBe('3 people are typing…');
  });
});
