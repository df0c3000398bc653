import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState, type FormEvent } from 'react';
import type { MemberResponse, Role } from '../api/schema';
import { useSession } from '../session';
import { Alert } from '../components/Alert';

const ROLES: Role[] = ['viewer', 'editor', 'owner'];

/** A project's members: everyone sees them; owners invite by e-mail,
 * change roles and remove. */
export default function Members({ projectId, canManage }: { projectId: string; canManage: boolean }) {
  const { client } = useSession();
  const queries = useQueryClient();
  const key = ['members', projectId];
  const members = useQuery({
    queryKey: key,
    queryFn: () => client.call<MemberResponse[]>('GET', `/api/v1/projects/${projectId}/members`),
  });
  const [email, setEmail] = useState('');
  const [role, setRole] = useState<Role>('editor');
  const refresh = () => void queries.invalidateQueries({ queryKey: key });
  const invite = useMutation({
    mutationFn: () => client.call('POST', `/api/v1/projects/${projectId}/members`, { email, role }),
    onSuccess: () => {
      setEmail('');
      refresh();
    },
  });
  const change = useMutation({
    mutationFn: ({ user, to }: { user: string; to: Role }) =>
      client.call('PATCH', `/api/v1/projects/${projectId}/members/${user}`, { role: to }),
    onSuccess: refresh,
  });
  const remove = useMutation({
    mutationFn: (user: string) => client.call('DELETE', `/api/v1/projects/${projectId}/members/${user}`),
    onSuccess: refresh,
  });
  const error = invite.error ?? change.error ?? remove.error;

  function submit(event: FormEvent) {
    event.preventDefault();
    if (email.trim()) invite.mutate();
  }

  return (
    <section aria-labelledby="members-heading" className="flex flex-col gap-2">
      <h3 id="members-heading" className="text-lg font-semibold">
        Members
      </h3>
      <ul className="flex flex-col gap-1" aria-label="Members">
        {members.data?.map((member) => (
          <li key={member.user_id} className="flex items-center gap-2">
            <span>{member.display_name}</span>
            <span className="text-sm text-gray-500">{member.email}</span>
            {canManage ? (
              <>
                <label className="sr-only" htmlFor={`role-${member.user_id}`}>
                  Role of {member.display_name}
                </label>
                <select
                  id={`role-${member.user_id}`}
                  className="rounded border px-1"
                  value={member.role}
                  onChange={(e) => change.mutate({ user: member.user_id, to: e.target.value as Role })}
                >
                  {ROLES.map((r) => (
                    <option key={r} value={r}>
                      {r}
                    </option>
                  ))}
                </select>
                <button type="button" className="text-sm text-red-600 underline" onClick={() => remove.mutate(member.user_id)}>
                  Remove
                </button>
              </>
            ) : (
              <span className="text-sm">{member.role}</span>
            )}
          </li>
        ))}
      </ul>
      {canManage && (
        <form onSubmit={submit} className="flex flex-wrap gap-2" aria-label="Invite a member">
          <label className="sr-only" htmlFor="invite-email">
            E-mail of the person to invite
          </label>
          <input
            id="invite-email"
            type="email"
            className="rounded border px-2 py-1"
            placeholder="name@example.com"
            value={email}
            onChange={(e) => setEmail(e.target.value)}
          />
          <label className="sr-only" htmlFor="invite-role">
            Their role
          </label>
          <select id="invite-role" className="rounded border px-1" value={role} onChange={(e) => setRole(e.target.value as Role)}>
            {ROLES.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
          <button type="submit" className="rounded bg-blue-600 px-3 py-1 text-white">
            Invite
          </button>
        </form>
      )}
      <Alert message={error?.message} />
    </section>
  );
}
