// Who is in a thread and who is typing, from the stream's `presence`
// signals. The server sends `here` on joining and every ten seconds, `left`
// when a connection closes, `typing` while someone writes; a member not heard
// of for three heartbeats is gone (their gateway may have died silently).

import type { PresenceSignal } from '../api/schema';

export const PRESENT_FOR_MS = 30_000;
export const TYPING_FOR_MS = 5_000;

export interface Present {
  user: string;
  name: string;
  seenAt: number;
  typingUntil: number;
}

export type Presence = Readonly<Record<string, Present>>;

export function applyPresence(presence: Presence, signal: PresenceSignal, now: number): Presence {
  if (signal.state === 'left') {
    const rest = { ...presence };
    delete rest[signal.user];
    return rest;
  }
  const before = presence[signal.user];
  const typingUntil = signal.state === 'typing' ? now + TYPING_FOR_MS : (before?.typingUntil ?? 0);
  return { ...presence, [signal.user]: { user: signal.user, name: signal.name, seenAt: now, typingUntil } };
}

/** The members here now, by name. */
export function here(presence: Presence, now: number): Present[] {
  return Object.values(presence)
    .filter((p) => now - p.seenAt < PRESENT_FOR_MS)
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** The other members typing now. */
export function typing(presence: Presence, now: number, me: string | undefined): Present[] {
  return here(presence, now).filter((p) => p.user !== me && p.typingUntil > now);
}

/** "Ada is typing…", "Ada and Ben are typing…", "3 people are typing…". */
export function typingLine(people: Present[]): string {
  if (people.length === 0) return '';
  if (people.length === 1) return `${people[0]?.name ?? ''} is typing…`;
  if (people.length === 2) return `${people[0]?.name ?? ''} and ${people[1]?.name ?? ''} are typing…`;
  return `${String(people.length)} people are typing…`;
}
