import { screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import { alice, apiError, json, mockApi, renderApp, session, template } from '../../test/utils';

const templates = [
  template({ name: 'xterm', display_name: 'XTerm', description: 'A plain terminal', category: 'Development', icon: 'terminal' }),
  template({ name: 'firefox', display_name: 'Firefox', description: 'Web browser', category: 'Internet', icon: 'globe' }),
  template({ name: 'gimp', display_name: 'GIMP', description: 'Image editor', category: 'Graphics', icon: 'https://img.example/gimp.png' }),
];

describe('Catalog', () => {
  it('lists every app as a card with its description, category and a Launch button', async () => {
    mockApi({ 'GET /api/v1/auth/me': () => json(alice), 'GET /api/v1/templates': () => json(templates) });
    renderApp('/');
    const card = await screen.findByRole('article', { name: 'XTerm' });
    expect(within(card).getByText('A plain terminal')).toBeInTheDocument();
    expect(within(card).getByText('Development')).toBeInTheDocument();
    expect(within(card).getByRole('button', { name: 'Launch XTerm' })).toBeInTheDocument();
    expect(screen.getAllByRole('article')).toHaveLength(3);
    expect(screen.getAllByRole('button', { name: /^Launch / }).map((b) => b.getAttribute('aria-label'))).toEqual([
      'Launch Firefox',
      'Launch GIMP',
      'Launch XTerm',
    ]);
  });

  it('filters by search text and by category, with an empty state', async () => {
    mockApi({ 'GET /api/v1/auth/me': () => json(alice), 'GET /api/v1/templates': () => json(templates) });
    const user = userEvent.setup();
    renderApp('/');
    await screen.findByRole('article', { name: 'XTerm' });

    await user.type(screen.getByLabelText('Search apps'), 'browser');
    expect(screen.getAllByRole('article').map((a) => a.getAttribute('aria-label'))).toEqual(['Firefox']);

    await user.clear(screen.getByLabelText('Search apps'));
    await user.click(screen.getByRole('radio', { name: 'Graphics' }));
    expect(screen.getAllByRole('article').map((a) => a.getAttribute('aria-label'))).toEqual(['GIMP']);

    await user.type(screen.getByLabelText('Search apps'), 'terminal');
    expect(screen.queryAllByRole('article')).toHaveLength(0);
    expect(screen.getByText('No apps match')).toBeInTheDocument();

    await user.click(screen.getByRole('radio', { name: 'All' }));
    expect(screen.getAllByRole('article').map((a) => a.getAttribute('aria-label'))).toEqual(['XTerm']);
  });

  it('launches an app and opens its session page', async () => {
    const created = session({ id: 's-new', state: 'pending', template: 'firefox' });
    const { calls } = mockApi({
      'GET /api/v1/auth/me': () => json(alice),
      'GET /api/v1/templates': () => json(templates),
      'POST /api/v1/sessions': () => json(created, 202),
      'GET /api/v1/sessions/:id': () => json(created),
    });
    const user = userEvent.setup();
    renderApp('/');
    const card = await screen.findByRole('article', { name: 'Firefox' });
    await user.click(within(card).getByRole('button', { name: 'Launch Firefox' }));

    expect(await screen.findByTestId('session-state')).toHaveTextContent('pending');
    expect(screen.getByTestId('location')).toHaveTextContent('/sessions/s-new');
    expect(calls.find((c) => c.method === 'POST' && c.path === '/api/v1/sessions')?.body).toEqual({ template: 'firefox' });
  });

  it('says clearly when no agent can take the session', async () => {
    mockApi({
      'GET /api/v1/auth/me': () => json(alice),
      'GET /api/v1/templates': () => json(templates),
      'POST /api/v1/sessions': () => apiError(503, 'unavailable', 'No agents available'),
    });
    const user = userEvent.setup();
    renderApp('/');
    const card = await screen.findByRole('article', { name: 'XTerm' });
    await user.click(within(card).getByRole('button', { name: 'Launch XTerm' }));
    const alert = await screen.findByRole('alert');
    expect(alert).toHaveTextContent('Could not launch XTerm');
    expect(alert).toHaveTextContent('No agents available');
    expect(screen.getByTestId('location')).toHaveTextContent(/^\/$/);
  });

  it('shows an error with a retry that recovers', async () => {
    let fail = true;
    mockApi({
      'GET /api/v1/auth/me': () => json(alice),
      'GET /api/v1/templates': () => (fail ? apiError(500, 'internal', 'database unavailable') : json(templates)),
    });
    const user = userEvent.setup();
    renderApp('/');
    expect(await screen.findByText('database unavailable')).toBeInTheDocument();
    fail = false;
    await user.click(screen.getByRole('button', { name: 'Retry' }));
    expect(await screen.findByRole('article', { name: 'GIMP' })).toBeInTheDocument();
  });
});
