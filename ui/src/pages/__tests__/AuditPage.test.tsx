import { screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../api/types';
import { json, mockApi, renderApp, root } from '../../test/utils';

function event(id: number, action: string, actor = 'root'): AuditEvent {
  return {
    id,
    created_at: '2026-12-07T10:00:00Z',
    org_id: 'org',
    actor,
    action,
    target: `t-${id}`,
    address: '10.0.0.7',
    request_id: `req-${id}`,
    detail: id === 3 ? { reason: 'invalid_credentials' } : {},
  };
}

describe('Audit page', () => {
  it('shows the newest events, reads older ones on demand, and filters on the server', async () => {
    const { calls } = mockApi({
      'GET /api/v1/auth/me': () => json(root),
      'GET /api/v1/audit': (call) => {
        if (call.search.get('action') === 'auth.*') return json({ events: [event(3, 'auth.login_failed', 'mallory')], next_cursor: null });
        if (call.search.get('cursor') === '3')
          return json({ events: [event(2, 'user.created'), event(1, 'auth.login')], next_cursor: null });
        return json({ events: [event(4, 'session.viewed'), event(3, 'auth.login_failed', 'mallory')], next_cursor: '3' });
      },
    });
    const user = userEvent.setup();
    renderApp('/admin/audit');
    await screen.findByRole('heading', { name: 'Audit trail' });
    const failed = await screen.findByText('auth.login_failed');
    const row = failed.closest('tr');
    expect(row).not.toBeNull();
    expect(within(row as HTMLElement).getByText('mallory')).toBeInTheDocument();
    expect(within(row as HTMLElement).getByText('10.0.0.7')).toBeInTheDocument();
    expect(within(row as HTMLElement).getByText('{"reason":"invalid_credentials"}')).toBeInTheDocument();
    expect(screen.queryByText('user.created')).toBeNull();

    await user.click(screen.getByRole('button', { name: 'Load older events' }));
    expect(await screen.findByText('user.created')).toBeInTheDocument();
    expect(screen.queryByRole('button', { name: 'Load older events' })).toBeNull();

    await user.type(screen.getByLabelText('Action'), 'auth.*');
    await user.click(screen.getByRole('button', { name: 'Filter' }));
    expect(await screen.findByText('auth.login_failed')).toBeInTheDocument();
    expect(screen.queryByText('session.viewed')).toBeNull();
    expect(
      calls
        .filter((c) => c.path === '/api/v1/audit')
        .at(-1)
        ?.search.get('action'),
    ).toBe('auth.*');
  });

  it('is listed in the admin sections', async () => {
    mockApi({ 'GET /api/v1/auth/me': () => json(root), 'GET /api/v1/audit': () => json({ events: [], next_cursor: null }) });
    renderApp('/admin/audit');
    const nav = await screen.findByRole('navigation', { name: 'Admin sections' });
    expect(within(nav).getByRole('link', { name: 'Audit' })).toHaveAttribute('aria-current', 'page');
    expect(await screen.findByText('No events match')).toBeInTheDocument();
  });
});
