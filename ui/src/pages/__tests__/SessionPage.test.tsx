import { act, screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import type { SessionState } from '../../api/types';
import { alice, apiError, FakeWebSocket, json, mockApi, renderApp, session, template } from '../../test/utils';

const apps = [template({ name: 'xterm', display_name: 'XTerm' })];

describe('Session page', () => {
  it('shows launch progress, then the desktop when the live socket says it is running', async () => {
    FakeWebSocket.install();
    mockApi({
      'GET /api/v1/auth/me': () => json(alice),
      'GET /api/v1/templates': () => json(apps),
      'GET /api/v1/sessions/:id': () => json(session({ id: 's-1', state: 'starting' })),
    });
    renderApp('/sessions/s-1');
    expect(await screen.findByRole('heading', { name: 'XTerm' })).toBeInTheDocument();
    expect(screen.getByTestId('session-state')).toHaveTextContent(/^starting$/);
    expect(screen.getByText('Pending')).toBeInTheDocument();
    expect(screen.getByText('Starting')).toBeInTheDocument();
    expect(screen.queryByTitle('Session desktop')).not.toBeInTheDocument();

    const ws = FakeWebSocket.latest();
    act(() => {
      ws.open();
      ws.message({ kind: 'hello', data: { pod_name: 'cp-1' } });
      ws.message({
        kind: 'session',
        data: { id: 's-1', state: 'running', reason: '', template: 'xterm', agent_id: 'a', updated_at: new Date().toISOString() },
      });
    });

    expect(screen.getByTestId('session-state')).toHaveTextContent(/^running$/);
    const frame = screen.getByTitle('Session desktop');
    expect(frame.tagName).toBe('IFRAME');
    expect(frame).toHaveAttribute('src', '/sessions/s-1/view');
    expect(screen.getByRole('button', { name: 'Fullscreen' })).toBeInTheDocument();
    const newTab = screen.getByRole('link', { name: 'Open in new tab' });
    expect(newTab).toHaveAttribute('href', '/sessions/s-1/view');
    expect(newTab).toHaveAttribute('target', '_blank');
    expect(newTab).toHaveAttribute('rel', 'noopener');
    expect(screen.getByRole('button', { name: 'Hibernate' })).toBeInTheDocument();
    expect(screen.getByRole('status', { name: /Live updates: Live/ })).toHaveTextContent('Live');
  });

  it('offers Resume for a hibernated session', async () => {
    let state: SessionState = 'hibernated';
    const { calls } = mockApi({
      'GET /api/v1/auth/me': () => json(alice),
      'GET /api/v1/templates': () => json(apps),
      'GET /api/v1/sessions/:id': () => json(session({ id: 's-1', state })),
      'POST /api/v1/sessions/:id/resume': () => {
        state = 'waking';
        return json(session({ id: 's-1', state }), 202);
      },
    });
    const user = userEvent.setup();
    renderApp('/sessions/s-1');
    expect(await screen.findByText('This session is hibernated')).toBeInTheDocument();
    expect(screen.queryByTitle('Session desktop')).not.toBeInTheDocument();
    expect(screen.getAllByRole('button', { name: 'Resume' })).toHaveLength(1);

    await user.click(screen.getByRole('button', { name: 'Resume' }));
    expect(await screen.findByTitle('Session desktop')).toBeInTheDocument();
    expect(screen.getByTestId('session-state')).toHaveTextContent(/^waking$/);
    expect(calls.some((c) => c.method === 'POST' && c.path === '/api/v1/sessions/s-1/resume')).toBe(true);
  });

  it('terminates after confirmation', async () => {
    let state: SessionState = 'running';
    mockApi({
      'GET /api/v1/auth/me': () => json(alice),
      'GET /api/v1/templates': () => json(apps),
      'GET /api/v1/sessions/:id': () => json(session({ id: 's-1', state })),
      'DELETE /api/v1/sessions/:id': () => {
        state = 'terminating';
        return json(session({ id: 's-1', state }), 202);
      },
    });
    const user = userEvent.setup();
    renderApp('/sessions/s-1');
    await user.click(await screen.findByRole('button', { name: 'Terminate' }));
    const dialog = await screen.findByRole('dialog');
    await user.click(within(dialog).getByRole('button', { name: 'Terminate session' }));
    expect(await screen.findByText('This session is shutting down.')).toBeInTheDocument();
    expect(screen.queryByTitle('Session desktop')).not.toBeInTheDocument();
  });

  it("says so when the session does not exist (or is someone else's)", async () => {
    mockApi({
      'GET /api/v1/auth/me': () => json(alice),
      'GET /api/v1/templates': () => json(apps),
      'GET /api/v1/sessions/:id': () => apiError(404, 'not_found', 'session not found'),
    });
    renderApp('/sessions/nope');
    expect(await screen.findByRole('heading', { name: 'Session not found' })).toBeInTheDocument();
    expect(screen.getByRole('link', { name: 'Back to my sessions' })).toHaveAttribute('href', '/sessions');
  });

  it('shows why a session failed', async () => {
    mockApi({
      'GET /api/v1/auth/me': () => json(alice),
      'GET /api/v1/templates': () => json(apps),
      'GET /api/v1/sessions/:id': () => json(session({ id: 's-1', state: 'failed', state_reason: 'image pull failed' })),
    });
    renderApp('/sessions/s-1');
    expect(await screen.findByText('This session failed')).toBeInTheDocument();
    expect(screen.getAllByText(/image pull failed/).length).toBeGreaterThan(0);
    expect(screen.queryByRole('button', { name: 'Terminate' })).not.toBeInTheDocument();
  });
});
