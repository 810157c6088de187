import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import type { Session } from '../../api/types';
import { alice, json, mockApi, renderApp, session } from '../../test/utils';

function row(id: string): HTMLElement {
  const tr = document.querySelector<HTMLElement>(`tr[data-session-id="${id}"]`);
  if (!tr) throw new Error(`no row for ${id}`);
  return tr;
}

const buttonsOf = (id: string) =>
  within(row(id))
    .getAllByRole('button')
    .map((b) => b.textContent);

describe('My sessions', () => {
  it('offers only the actions that make sense in each state', async () => {
    const list: Session[] = [
      session({ id: 'run', state: 'running' }),
      session({ id: 'hib', state: 'hibernated' }),
      session({ id: 'pend', state: 'pending' }),
      session({ id: 'term', state: 'terminating' }),
    ];
    mockApi({ 'GET /api/v1/auth/me': () => json(alice), 'GET /api/v1/sessions': () => json(list) });
    renderApp('/sessions');
    await screen.findByRole('table');

    expect(buttonsOf('run')).toEqual(['Hibernate', 'Terminate']);
    expect(buttonsOf('hib')).toEqual(['Resume', 'Terminate']);
    expect(buttonsOf('pend')).toEqual(['Terminate']);
    expect(within(row('term')).queryAllByRole('button')).toHaveLength(0);
    for (const id of ['run', 'hib', 'pend', 'term']) {
      // Open is a link (middle-click, open in a new tab), not a button that navigates.
      expect(within(row(id)).getByRole('link', { name: `Open xterm session ${id}` })).toHaveAttribute('href', `/sessions/${id}`);
    }
    expect(within(row('run')).getByText('running')).toBeInTheDocument();
    expect(within(row('run')).getByText('5 min ago')).toBeInTheDocument();
  });

  it('includes ended sessions only when asked, and then offers no actions on them', async () => {
    const { calls } = mockApi({
      'GET /api/v1/auth/me': () => json(alice),
      'GET /api/v1/sessions': (call) =>
        json(
          call.search.get('include_terminated') === 'true'
            ? [session({ id: 'live' }), session({ id: 'old', state: 'terminated' }), session({ id: 'bad', state: 'failed' })]
            : [session({ id: 'live' })],
        ),
    });
    const user = userEvent.setup();
    renderApp('/sessions');
    await screen.findByRole('table');
    expect(document.querySelectorAll('tr[data-session-id]')).toHaveLength(1);

    await user.click(screen.getByRole('switch', { name: 'Show ended sessions' }));
    await waitFor(() => expect(document.querySelectorAll('tr[data-session-id]')).toHaveLength(3));
    for (const id of ['old', 'bad']) {
      expect(within(row(id)).queryAllByRole('button')).toHaveLength(0);
      expect(within(row(id)).queryAllByRole('link')).toHaveLength(0);
    }
    expect(calls.some((c) => c.search.get('include_terminated') === 'true')).toBe(true);
  });

  it('terminates only after confirmation', async () => {
    let list = [session({ id: 's-1', state: 'running' })];
    const { calls } = mockApi({
      'GET /api/v1/auth/me': () => json(alice),
      'GET /api/v1/sessions': () => json(list),
      'DELETE /api/v1/sessions/:id': (_, p) => {
        list = [session({ id: p.id ?? '', state: 'terminating' })];
        return json(list[0], 202);
      },
    });
    const user = userEvent.setup();
    renderApp('/sessions');
    await screen.findByRole('table');

    await user.click(screen.getByRole('button', { name: 'Terminate xterm session s-1' }));
    const dialog = await screen.findByRole('dialog');
    await user.click(within(dialog).getByRole('button', { name: 'Cancel' }));
    expect(calls.some((c) => c.method === 'DELETE')).toBe(false);

    await user.click(screen.getByRole('button', { name: 'Terminate xterm session s-1' }));
    await user.click(await screen.findByRole('button', { name: 'Terminate session' }));
    await waitFor(() => expect(calls.some((c) => c.method === 'DELETE' && c.path === '/api/v1/sessions/s-1')).toBe(true));
    await waitFor(() => expect(within(row('s-1')).getByText('terminating')).toBeInTheDocument());
    expect(screen.queryByRole('button', { name: 'Terminate xterm session s-1' })).not.toBeInTheDocument();
  });

  it('hibernates a running session and reports a refused transition', async () => {
    mockApi({
      'GET /api/v1/auth/me': () => json(alice),
      'GET /api/v1/sessions': () => json([session({ id: 's-1', state: 'running' })]),
      'POST /api/v1/sessions/:id/hibernate': () =>
        json({ error: { code: 'conflict', message: 'cannot hibernate a session that is starting' } }, 409),
    });
    const user = userEvent.setup();
    renderApp('/sessions');
    await screen.findByRole('table');
    await user.click(screen.getByRole('button', { name: 'Hibernate xterm session s-1' }));
    expect(await screen.findByText('cannot hibernate a session that is starting')).toBeInTheDocument();
  });

  it('names the session each row action acts on, so two sessions of one app are told apart', async () => {
    const { calls } = mockApi({
      'GET /api/v1/auth/me': () => json(alice),
      'GET /api/v1/sessions': () =>
        json([session({ id: 's-1' }), session({ id: 's-2' }), session({ id: 's-3', template: 'firefox', state: 'hibernated' })]),
      'POST /api/v1/sessions/:id/hibernate': (_, p) => json(session({ id: p.id ?? '', state: 'hibernating' }), 202),
    });
    const user = userEvent.setup();
    renderApp('/sessions');
    await screen.findByRole('table');

    const names = (id: string) => [
      ...within(row(id))
        .getAllByRole('link')
        .map((a) => a.getAttribute('aria-label')),
      ...within(row(id))
        .getAllByRole('button')
        .map((b) => b.getAttribute('aria-label')),
    ];
    expect(names('s-1')).toEqual(['Open xterm session s-1', 'Hibernate xterm session s-1', 'Terminate xterm session s-1']);
    expect(names('s-3')).toEqual(['Open firefox session s-3', 'Resume firefox session s-3', 'Terminate firefox session s-3']);

    await user.click(screen.getByRole('button', { name: 'Hibernate xterm session s-2' }));
    await waitFor(() => expect(calls.some((c) => c.method === 'POST' && c.path === '/api/v1/sessions/s-2/hibernate')).toBe(true));
    expect(calls.some((c) => c.path === '/api/v1/sessions/s-1/hibernate')).toBe(false);
  });

  it('points to the catalog when there is nothing to show', async () => {
    mockApi({ 'GET /api/v1/auth/me': () => json(alice), 'GET /api/v1/sessions': () => json([]) });
    renderApp('/sessions');
    expect(await screen.findByText('No active sessions')).toBeInTheDocument();
    expect(screen.getByRole('link', { name: 'catalog' })).toHaveAttribute('href', '/');
  });
});
