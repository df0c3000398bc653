import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import type { MemberSpending } from '../api/schema';
import { useSession } from '../session';
import { Alert } from '../components/Alert';

/** What each member spent on models, month by month, and their monthly
 * budgets in the project (owners set them). */
export default function MemberBudgets({ projectId }: { projectId: string }) {
  const { client } = useSession();
  const queries = useQueryClient();
  const key = ['spending', projectId];
  const spending = useQuery({
    queryKey: key,
    queryFn: () => client.call<MemberSpending[]>('GET', `/api/v1/projects/${projectId}/spending?months=6`),
  });
  const [drafts, setDrafts] = useState<Record<string, string>>({});
  const save = useMutation({
    mutationFn: ({ user, text }: { user: string; text: string }) =>
      client.call('PUT', `/api/v1/projects/${projectId}/members/${user}/budget`, {
        monthly_usd: text.trim() === '' ? null : Number(text),
      }),
    onSuccess: (_done, { user }) => {
      setDrafts((current) => Object.fromEntries(Object.entries(current).filter(([id]) => id !== user)));
      void queries.invalidateQueries({ queryKey: key });
    },
  });
  return (
    <section aria-labelledby="spending-heading" className="flex flex-col gap-2">
      <h3 id="spending-heading" className="text-lg font-semibold">
        Members' spending
      </h3>
      <table className="text-left text-sm" aria-label="Members' spending">
        <thead>
          <tr>
            <th className="pr-3">Member</th>
            <th className="pr-3">This month</th>
            <th className="pr-3">Earlier months</th>
            <th className="pr-3">Monthly budget here (US $, empty for none)</th>
          </tr>
        </thead>
        <tbody>
          {spending.data?.map((member) => {
            const shown = drafts[member.user_id] ?? (member.monthly_usd == null ? '' : String(member.monthly_usd));
            const spent = member.monthly_usd != null && member.this_month_usd >= member.monthly_usd;
            return (
              <tr key={member.user_id}>
                <td className="pr-3">{member.display_name}</td>
                <td className={spent ? 'pr-3 text-red-700' : 'pr-3'}>
                  ${member.this_month_usd.toFixed(2)}
                  {spent && ' — spent: their runs are refused until next month'}
                  {member.across_projects_usd != null && ` (limit across projects: $${member.across_projects_usd.toFixed(2)})`}
                </td>
                <td className="pr-3">{member.months.map((m) => `${m.month}: $${m.cost_usd.toFixed(2)}`).join(' · ') || '—'}</td>
                <td className="pr-3">
                  <input
                    aria-label={`Monthly budget of ${member.display_name}`}
                    className="w-24 rounded border px-1"
                    type="number"
                    min="0"
                    step="0.01"
                    value={shown}
                    onChange={(e) => setDrafts({ ...drafts, [member.user_id]: e.target.value })}
                  />{' '}
                  {drafts[member.user_id] !== undefined && (
                    <button type="button" className="rounded border px-2" onClick={() => save.mutate({ user: member.user_id, text: shown })}>
                      Save
                    </button>
                  )}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      <Alert message={(spending.error ?? save.error)?.message} />
    </section>
  );
}
