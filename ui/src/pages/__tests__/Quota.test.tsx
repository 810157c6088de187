import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import type { Quota } from '../../api/quotas';
import { alice, json, mockApi, renderApp, root, session, template } from '../../test/utils';

const none = { sessions: null, cpu_millicores: null, memory_mb: null };

function quota(over: { user?: Partial<Quota['user']>; org?: Partial<Quota['org']> } = {}): Quota {
  const scope = { limits: none, own: none, usage: { sessions: 0, cpu_millicores: 0, memory_mb: 0 } };
  return { user: { ...scope, ...over.user }, org: { ...scope, ...over.org } };
}

const limited = quota({
  user: {
    limits: { sessions: 3, cpu_millicores: 4000, memory_mb: 8192 },
    own: { sessions: 3, cpu_millicores: 4000, memory_mb: 8192 },
    usage: { sessions: 2, cpu_millicores: 2000, memory_mb: 1024 },
  },
});

describe('Quota usage', () => {
  it('shows the user their usage against their limits', async () => {
    mockApi({
      'GET /api/v1/auth/me': () => json(alice),
      'GET /api/v1/templates': () => json([template()]),
      'GET /api/v1/sessions': () => json([session({ id: 's-1' })]),
      'GET /api/v1/quota': () => json(limited),
    });
    renderApp('/');
    const status = await screen.findByRole('status', { name: 'Quota usage' });
    expect(status).toHaveTextContent('Your quota: 2 of 3 sessions · 2 of 4 CPU · 1 of 8 GiB');
    expect(status).not.toHaveTextContent('organisation');
    expect(status).not.toHaveTextContent('limit reached');
  });

  it('shows nothing where no limit is in effect', async () => {
    mockApi({
      'GET /api/v1/auth/me': () => json(alice),
      'GET /api/v1/sessions': () => json([session({ id: 's-1' })]),
      'GET /api/v1/quota': () => json(quota()),
    });
    renderApp('/sessions');
    await screen.findByRole('table');
    expect(screen.queryByRole('status', { name: 'Quota usage' })).toBeNull();
  });

  it('says which limit refused a start, and shows the limit reached', async () => {
    let full = false;
    mockApi({
      'GET /api/v1/auth/me': () => json(alice),
      'GET /api/v1/templates': () => json([template()]),
      'GET /api/v1/quota': () =>
        json(
          full
            ? quota({ org: { limits: { ...none, sessions: 5 }, own: none, usage: { sessions: 5, cpu_millicores: 5000, memory_mb: 5120 } } })
            : quota(),
        ),
      'POST /api/v1/sessions': () => {
        full = true;
        return json(
          {
            error: {
              code: 'quota_exceeded',
              message:
                "quota exceeded: org 'acme''s sessions limit is 5 sessions and 5 sessions are in use; this session needs 1 session more",
              quota: { scope: 'org', name: 'acme', resource: 'sessions', used: 5, requested: 1, limit: 5 },
            },
          },
          403,
        );
      },
    });
    const user = userEvent.setup();
    renderApp('/');
    const card = await screen.findByRole('article', { name: 'XTerm' });
    await user.click(within(card).getByRole('button', { name: 'Launch XTerm' }));
    const alert = await screen.findByRole('alert');
    expect(alert).toHaveTextContent('Could not launch XTerm');
    expect(alert).toHaveTextContent("org 'acme''s sessions limit is 5 sessions");
    const status = await screen.findByRole('status', { name: 'Quota usage' });
    expect(status).toHaveTextContent('Your organisation: 5 of 5 sessions (limit reached)');
  });

  it("lets an admin set a user's own limits, empty for the default", async () => {
    const { calls } = mockApi({
      'GET /api/v1/auth/me': () => json(root),
      'GET /api/v1/users': () => json([root, alice]),
      'GET /api/v1/users/:id/quota': () => json(limited),
      'PUT /api/v1/users/:id/quota': () => json(limited),
    });
    const user = userEvent.setup();
    renderApp('/admin/users');
    await screen.findByRole('table');
    await user.click(screen.getByRole('button', { name: 'Quota of alice' }));
    const dialog = await screen.findByRole('dialog');
    expect(await within(dialog).findByText(/In use now: 2 session\(s\), 2 CPU, 1024 MiB/)).toBeInTheDocument();
    const sessions = within(dialog).getByLabelText('Sessions');
    expect(sessions).toHaveValue('3');
    await user.clear(sessions);
    await user.type(sessions, '5');
    const cpu = within(dialog).getByLabelText('CPU (cores)');
    await user.clear(cpu);
    await user.type(cpu, '1.5');
    await user.clear(within(dialog).getByLabelText('Memory (MiB)'));
    await user.click(within(dialog).getByRole('button', { name: 'Save quota' }));
    await waitFor(() => expect(calls.some((c) => c.method === 'PUT')).toBe(true));
    const put = calls.find((c) => c.method === 'PUT');
    expect(put?.path).toBe('/api/v1/users/u-alice/quota');
    expect(put?.body).toEqual({ sessions: 5, cpu_millicores: 1500, memory_mb: null });
  });
});
