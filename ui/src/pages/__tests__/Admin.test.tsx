import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import type { Agent, ApiToken } from '../../api/types';
import { alice, json, mockApi, renderApp, root } from '../../test/utils';

function agent(over: Partial<Agent> = {}): Agent {
  return {
    id: 'agent-1',
    platform: 'docker',
    region: 'eu-west',
    approval_status: 'approved',
    status: 'online',
    connected: true,
    pod_name: 'cp-0',
    epoch: 1,
    draining: false,
    max_sessions: 10,
    active_sessions: 4,
    capacity: {},
    last_heartbeat: new Date(Date.now() - 10 * 60_000).toISOString(),
    reported_sessions: 4,
    ...over,
  };
}

const rowOf = (id: string) => {
  const tr = document.querySelector<HTMLElement>(`tr[data-agent-id="${id}"]`);
  if (!tr) throw new Error(`no row for ${id}`);
  return tr;
};

describe('Admin console', () => {
  it.each(['/admin', '/admin/agents', '/admin/users'])('is closed to non-admins at %s, without requesting admin data', async (path) => {
    const { calls } = mockApi({ 'GET /api/v1/auth/me': () => json(alice) });
    renderApp(path);
    expect(await screen.findByRole('heading', { name: 'Admins only' })).toBeInTheDocument();
    expect(screen.queryByRole('link', { name: 'Admin' })).not.toBeInTheDocument();
    expect(calls.map((c) => c.path)).toEqual(['/api/v1/auth/me']);
  });

  it('shows the Admin link and sections to admins', async () => {
    mockApi({
      'GET /api/v1/auth/me': () => json(root),
      'GET /api/v1/admin/overview': () =>
        json({
          agents_connected: 2,
          agents_pending: 1,
          sessions_active: 5,
          commands_dispatched_total: 40,
          commands_failed_total: 3,
          bucket_seconds: 120,
          series: [],
        }),
    });
    renderApp('/admin');
    expect(await screen.findByRole('link', { name: 'Admin' })).toHaveAttribute('href', '/admin');
    expect(screen.getByRole('link', { name: 'Catalog' })).toHaveAttribute('href', '/');
    expect(screen.getByRole('link', { name: 'My sessions' })).toHaveAttribute('href', '/sessions');
    const sections = within(screen.getByRole('navigation', { name: 'Admin sections' }));
    for (const [name, href] of [
      ['Overview', '/admin'],
      ['Agents', '/admin/agents'],
      ['Replicas', '/admin/replicas'],
      ['Sessions', '/admin/sessions'],
      ['Templates', '/admin/templates'],
      ['Users', '/admin/users'],
      ['API tokens', '/admin/tokens'],
    ]) {
      expect(sections.getByRole('link', { name })).toHaveAttribute('href', href);
    }
    expect(sections.getByRole('link', { name: 'Overview' })).toHaveAttribute('aria-current', 'page');
    const card = await screen.findByRole('group', { name: 'Agents connected' });
    expect(card).toHaveTextContent('2');
    expect(card).toHaveTextContent('1 agent awaiting approval');
    expect(screen.getByRole('group', { name: 'Active sessions' })).toHaveTextContent('5');
    expect(screen.getByRole('group', { name: 'Commands dispatched' })).toHaveTextContent('40');
    expect(screen.getByRole('group', { name: 'Commands failed' })).toHaveTextContent('3');
  });

  it.each(['/admin', '/admin/agents', '/admin/replicas'])(
    "sends an org's admin from %s to their org's sessions, without requesting platform data",
    async (path) => {
      const orgAdmin = { ...root, username: 'acme-admin', platform_admin: false };
      const { calls } = mockApi({
        'GET /api/v1/auth/me': () => json(orgAdmin),
        'GET /api/v1/sessions': () => json([]),
      });
      renderApp(path);
      const sections = within(await screen.findByRole('navigation', { name: 'Admin sections' }));
      expect(sections.getByRole('link', { name: 'Sessions' })).toHaveAttribute('aria-current', 'page');
      for (const name of ['Overview', 'Agents', 'Replicas']) {
        expect(sections.queryByRole('link', { name })).not.toBeInTheDocument();
      }
      expect(sections.getByRole('link', { name: 'Users' })).toBeInTheDocument();
      expect(calls.map((c) => c.path).filter((p) => /agents|pods|overview/.test(p))).toEqual([]);
    },
  );

  it('approves a pending agent', async () => {
    let agents = [agent({ id: 'agent-1' }), agent({ id: 'agent-new', approval_status: 'pending', status: 'offline', pod_name: null })];
    const { calls } = mockApi({
      'GET /api/v1/auth/me': () => json(root),
      'GET /api/v1/agents': () => json(agents),
      'POST /api/v1/admin/agents/:id/approve': (_, p) => {
        agents = agents.map((a) => (a.id === p.id ? { ...a, approval_status: 'approved', status: 'online' } : a));
        return json(agents.find((a) => a.id === p.id));
      },
    });
    const user = userEvent.setup();
    renderApp('/admin/agents');
    await screen.findByRole('table');

    const pending = rowOf('agent-new');
    expect(within(pending).getByText('pending')).toBeInTheDocument();
    expect(within(rowOf('agent-1')).getByText('online')).toBeInTheDocument();
    expect(within(rowOf('agent-1')).getByRole('progressbar', { name: /4 of 10 sessions/ })).toBeInTheDocument();
    expect(screen.queryByRole('button', { name: 'Approve agent agent-1' })).not.toBeInTheDocument();

    expect(within(pending).getByRole('button', { name: 'Reject agent agent-new' })).toBeInTheDocument();
    await user.click(within(pending).getByRole('button', { name: 'Approve agent agent-new' }));
    await waitFor(() => expect(within(rowOf('agent-new')).getByText('online')).toBeInTheDocument());
    expect(screen.queryByRole('button', { name: 'Approve agent agent-new' })).not.toBeInTheDocument();
    expect(within(rowOf('agent-new')).getByRole('button', { name: 'Rotate key of agent agent-new' })).toBeInTheDocument();
    expect(calls.some((c) => c.method === 'POST' && c.path === '/api/v1/admin/agents/agent-new/approve')).toBe(true);
  });

  it('rotates a key after confirmation and shows it once', async () => {
    mockApi({
      'GET /api/v1/auth/me': () => json(root),
      'GET /api/v1/agents': () => json([agent({ id: 'agent-1' })]),
      'POST /api/v1/admin/agents/:id/rotate-key': () =>
        json({ agentId: 'agent-1', apiKey: 'sk-very-secret', message: 'Update the agent configuration.' }),
    });
    const user = userEvent.setup();
    renderApp('/admin/agents');
    await user.click(await screen.findByRole('button', { name: 'Rotate key of agent agent-1' }));
    await user.click(within(await screen.findByRole('dialog')).getByRole('button', { name: 'Rotate key' }));
    expect(await screen.findByText('sk-very-secret')).toBeInTheDocument();
    expect(screen.getByText(/shown only once/)).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Copy key' })).toBeInTheDocument();
  });

  it("lists the org's API tokens with their owners, and revokes one after confirmation", async () => {
    const token: ApiToken = {
      id: 'cccccccccccccccc',
      prefix: 'sst_cccccccccccccccc',
      name: 'backup script',
      scope: 'full',
      user_id: alice.id,
      username: 'alice',
      created_at: '2026-01-01T00:00:00Z',
      expires_at: '2099-01-01T00:00:00Z',
      last_used_at: null,
      last_used_address: '',
      revoked_at: null,
      revoked_by: '',
      status: 'active',
    };
    let list = [token];
    const { calls } = mockApi({
      'GET /api/v1/auth/me': () => json(root),
      'GET /api/v1/admin/tokens': () => json(list),
      'DELETE /api/v1/tokens/:id': () => {
        list = [{ ...token, status: 'revoked', revoked_at: '2026-01-03T00:00:00Z', revoked_by: root.username }];
        return json(list[0]);
      },
    });
    const user = userEvent.setup();
    renderApp('/admin/tokens');
    const table = await screen.findByRole('table', { name: 'API tokens' });
    expect(table).toHaveTextContent('alice');
    expect(table).toHaveTextContent('backup script');
    await user.click(screen.getByRole('button', { name: 'Revoke backup script' }));
    await user.click(await screen.findByRole('button', { name: 'Revoke' }));
    expect(await screen.findByText('revoked')).toBeInTheDocument();
    expect(calls.find((c) => c.method === 'DELETE')?.path).toBe('/api/v1/tokens/cccccccccccccccc');
  });
});
