import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState, type FormEvent } from 'react';
import type { MemberResponse, Role } from '../api/schema';
import { useSession } from '../session';
import { Alert } from '../components/Alert';
import { Badge, Button, Input, Select } from '../components/ui';

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
      <ul className="flex flex-col divide-y divide-zinc-200 rounded-lg border border-zinc-200 bg-white dark:divide-zinc-700 dark:border-zinc-700 dark:bg-zinc-900" aria-label="Members">
        {members.data?.map((member) => (
          <li key={member.user_id} className="flex flex-wrap items-center gap-2 px-3 py-2">
            <span className="font-medium">{member.display_name}</span>
            <span className="min-w-0 flex-1 truncate text-sm text-zinc-600 dark:text-zinc-400">{member.email}</span>
            {canManage ? (
              <>
                <label className="sr-only" htmlFor={`role-${member.user_id}`}>
                  Role of {member.display_name}
                </label>
                <Select
                  id={`role-${member.user_id}`}
                  value={member.role}
                  onChange={(e) => change.mutate({ user: member.user_id, to: e.target.value as Role })}
                >
                  {ROLES.map((r) => (
                    <option key={r} value={r}>
                      {r}
                    </option>
                  ))}
                </Select>
                <Button size="sm" variant="ghost" className="text-red-700 dark:text-red-300" onClick={() => remove.mutate(member.user_id)}>
                  Remove
                </Button>
              </>
            ) : (
              <Badge>{member.role}</Badge>
            )}
          </li>
        ))}
      </ul>
      {canManage && (
        <form onSubmit={submit} className="flex flex-wrap gap-2" aria-label="Invite a member">
          <label className="sr-only" htmlFor="invite-email">
            E-mail of the person to invite
          </label>
          <Input
            id="invite-email"
            type="email"
            className="max-w-xs"
            placeholder="name@example.com"
            value={email}
            onChange={(e) => setEmail(e.target.value)}
          />
          <label className="sr-only" htmlFor="invite-role">
            Their role
          </label>
          <Select id="invite-role" value={role} onChange={(e) => setRole(e.target.value as Role)}>
            {ROLES.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </Select>
          <Button type="submit" variant="primary">
            Invite
          </Button>
        </form>
      )}
      <Alert message={error?.message} />
    </section>
  );
}
