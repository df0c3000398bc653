// Sharing one run as a read-only link (owners): made with an expiry, the
// address shown to copy (its secret is shown once), the run's links listed
// with their state and revoked in a click.

import * as Dialog from '@radix-ui/react-dialog';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import type { CreatedShareResponse, ShareResponse } from '../api/schema';
import { Alert } from '../components/Alert';
import { copyText, toast } from '../components/toast';
import { Badge, Button, Field, Input, Select } from '../components/ui';
import { useSession } from '../session';

export function ShareRun({ runId }: { runId: string }) {
  const { client } = useSession();
  const queries = useQueryClient();
  const [open, setOpen] = useState(false);
  const [hours, setHours] = useState(168);
  const [made, setMade] = useState<string | null>(null);
  const shares = useQuery({
    queryKey: ['shares', runId],
    queryFn: () => client.call<ShareResponse[]>('GET', `/api/v1/runs/${runId}/shares`),
    enabled: open,
  });
  const create = useMutation({
    mutationFn: () => client.call<CreatedShareResponse>('POST', `/api/v1/runs/${runId}/shares`, { expires_in_hours: hours }),
    onSuccess: (share) => {
      setMade(`${globalThis.location.origin}${share.path}`);
      void queries.invalidateQueries({ queryKey: ['shares', runId] });
    },
  });
  const revoke = useMutation({
    mutationFn: (id: string) => client.call<ShareResponse>('DELETE', `/api/v1/runs/${runId}/shares/${id}`),
    onSuccess: () => {
      toast('The link was revoked: it opens nothing now.');
      void queries.invalidateQueries({ queryKey: ['shares', runId] });
    },
  });
  return (
    <Dialog.Root
      open={open}
      onOpenChange={(now) => {
        setOpen(now);
        if (!now) setMade(null);
      }}
    >
      <Dialog.Trigger asChild>
        <Button size="sm" variant="ghost">
          Share
        </Button>
      </Dialog.Trigger>
      <Dialog.Portal>
        <Dialog.Overlay className="fixed inset-0 z-30 bg-black/40" />
        <Dialog.Content className="fixed top-1/2 left-1/2 z-40 flex w-[32rem] max-w-[calc(100vw-2rem)] -translate-x-1/2 -translate-y-1/2 flex-col gap-3 rounded-lg bg-white p-4 text-zinc-900 shadow-xl dark:bg-zinc-900 dark:text-zinc-100">
          <Dialog.Title className="text-lg font-semibold">Share this run</Dialog.Title>
          <Dialog.Description className="text-sm text-zinc-600 dark:text-zinc-400">
            Anyone with the link sees this run — its message, steps, pages and answer — and nothing else of the project,
            without signing in, until it expires or you revoke it.
          </Dialog.Description>
          <div className="flex items-end gap-2">
            <Field label="The link lasts" htmlFor="share-hours">
              <Select id="share-hours" value={hours} onChange={(e) => setHours(Number(e.target.value))}>
                <option value={24}>a day</option>
                <option value={168}>a week</option>
                <option value={720}>30 days</option>
              </Select>
            </Field>
            <Button variant="primary" onClick={() => create.mutate()} disabled={create.isPending}>
              Make a link
            </Button>
          </div>
          <Alert message={create.error?.message ?? revoke.error?.message} />
          {made && (
            <div className="flex gap-2">
              <Input readOnly aria-label="Share link" value={made} onFocus={(e) => e.currentTarget.select()} />
              <Button onClick={() => void copyText(made, 'the link')}>Copy</Button>
            </div>
          )}
          {(shares.data?.length ?? 0) > 0 && (
            <ul aria-label="Links to this run" className="flex flex-col gap-1 text-sm">
              {shares.data?.map((share) => (
                <li key={share.id} className="flex items-center gap-2">
                  <span className="flex-1">Made {new Date(share.created_at).toLocaleString()}</span>
                  <Badge tone={share.open ? 'good' : 'neutral'}>{share.open ? `until ${new Date(share.expires_at).toLocaleDateString()}` : share.revoked_at ? 'revoked' : 'expired'}</Badge>
                  {share.open && (
                    <Button size="sm" variant="danger" onClick={() => revoke.mutate(share.id)}>
                      Revoke
                    </Button>
                  )}
                </li>
              ))}
            </ul>
          )}
          <Dialog.Close asChild>
            <Button className="self-end">Close</Button>
          </Dialog.Close>
        </Dialog.Content>
      </Dialog.Portal>
    </Dialog.Root>
  );
}
