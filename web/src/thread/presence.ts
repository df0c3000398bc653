// Who is in a thread and who is typing. The server sends the whole state in
// each `presence` event of the thread's stream: when the stream opens, then
// whenever it changes (at most four times a second). Typing ends and absent
// members leave on the server's side; this only chooses what to show.

import type { PresenceSnapshot, PresentMember } from '../api/schema';

export const nobody: PresenceSnapshot = { here: [], typing: [] };

/** The other members typing now (never oneself). */
export function othersTyping(presence: PresenceSnapshot, me: string | undefined): PresentMember[] {
  return presence.typing.filter((p) => p.user !== me);
}

/** "Ada is typing…", "Ada and Ben are typing…", "3 people are typing…". */
export function typingLine(people: PresentMember[]): string {
  if (people.length === 0) return '';
  if (people.length === 1) return `${people[0]?.name ?? ''} is typing…`;
  if (people.length === 2) return `${people[0]?.name ?? ''} and ${people[1]?.name ?? ''} are typing…`;
  return `${String(people.length)} people are typing…`;
}
