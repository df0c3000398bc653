import { fireEvent, screen, waitFor } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { renderWithApi } from '../test-api';
import MemberBudgets from './MemberBudgets';

const SPENDING = [
  {
    user_id: 'u1',
    display_name: 'Ada',
    monthly_usd: 0.5,
    across_projects_usd: null,
    this_month_usd: 0.75,
    months: [{ month: '2026-11', cost_usd: 0.75 }],
  },
  { user_id: 'u2', display_name: 'Bob', monthly_usd: null, across_projects_usd: 20, this_month_usd: 0, months: [] },
];

describe('MemberBudgets', () => {
  it('shows who spent what beside their budgets, and sets one', async () => {
    const sent = renderWithApi(<MemberBudgets projectId="p1" />, (method) => (method === 'GET' ? SPENDING : null));
    expect((await screen.findByText(/\$0\.75 — spent/)).textContent).toContain('refused until next month');
    expect(screen.getByText('2026-11: $0.75')).toBeTruthy();
    expect(screen.getByText(/limit across projects: \$20\.00/)).toBeTruthy();
    fireEvent.change(screen.getByLabelText('Monthly budget of Bob'), { target: { value: '12.5' } });
    fireEvent.click(screen.getByRole('button', { name: 'Save' }));
    await waitFor(() => expect(sent.some((s) => s.method === 'PUT')).toBe(true));
    expect(sent.find((s) => s.method === 'PUT')).toEqual({
      method: 'PUT',
      url: '/api/v1/projects/p1/members/u2/budget',
      body: { monthly_usd: 12.5 },
    });
  });
});
