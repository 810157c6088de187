import { screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import type { Webhook, WebhookDelivery } from '../../api/webhooks';
import { json, mockApi, renderApp, root } from '../../test/utils';

const EVENTS = ['session.started', 'session.ended', 'session.failed', 'agent.offline', 'quota.reached'];

function hook(over: Partial<Webhook> = {}): Webhook {
  return {
    id: 'wh1',
    org_id: 'org1',
    url: 'https://hooks.example.com/ss',
    event_types: ['session.started'],
    enabled: true,
    created_by: 'admin',
    created_at: '2026-12-07T18:00:00Z',
    ...over,
  };
}

describe('Admin webhooks', () => {
  it('registers an endpoint with the chosen events and shows its secret once', async () => {
    const hooks: Webhook[] = [];
    const { calls } = mockApi({
      'GET /api/v1/auth/me': () => json(root),
      'GET /api/v1/webhooks': () => json(hooks),
      'GET /api/v1/webhooks/event-types': () => json(EVENTS),
      'POST /api/v1/webhooks': () => {
        const created = hook({ event_types: ['session.ended', 'session.started'] });
        hooks.push(created);
        return json({ ...created, secret: 'whsec_shown_once' }, 201);
      },
    });
    const user = userEvent.setup();
    renderApp('/admin/webhooks');
    expect(await screen.findByText('No webhooks')).toBeInTheDocument();
    await user.click(screen.getByRole('button', { name: 'New webhook' }));
    const dialog = await screen.findByRole('dialog');
    // pasted, not typed key by key: typing is slow on a busy machine
    await user.click(within(dialog).getByLabelText(/Endpoint URL/));
    await user.keyboard('{Control>}a{/Control}');
    await user.paste('https://hooks.example.com/ss');
    await user.click(await within(dialog).findByLabelText('session.started'));
    await user.click(within(dialog).getByLabelText('session.ended'));
    await user.click(within(dialog).getByRole('button', { name: 'Register webhook' }));

    expect(await screen.findByTestId('webhook-secret')).toHaveTextContent('whsec_shown_once');
    expect(calls.find((c) => c.method === 'POST')?.body).toEqual({
      url: 'https://hooks.example.com/ss',
      event_types: ['session.started', 'session.ended'],
    });
    await user.click(screen.getByRole('button', { name: 'Done' }));
    expect(await screen.findByText('https://hooks.example.com/ss')).toBeInTheDocument();
    expect(screen.queryByText('whsec_shown_once')).toBeNull();
  });

  it('shows the delivery log with attempts and answers, and redelivers a failed one', async () => {
    const failed: WebhookDelivery = {
      id: 'd1',
      webhook_id: 'wh1',
      event_type: 'session.failed',
      payload: {},
      state: 'failed',
      attempts: 10,
      next_attempt_at: '2026-12-07T18:00:00Z',
      last_status: 503,
      last_response: 'down for maintenance',
      last_error: '',
      created_at: '2026-12-07T18:00:00Z',
      delivered_at: null,
    };
    const { calls } = mockApi({
      'GET /api/v1/auth/me': () => json(root),
      'GET /api/v1/webhooks': () => json([hook()]),
      'GET /api/v1/webhooks/:id/deliveries': () => json([failed]),
      'POST /api/v1/webhooks/:id/deliveries/:d/redeliver': () => json({ ...failed, state: 'pending', attempts: 0 }, 202),
    });
    const user = userEvent.setup();
    renderApp('/admin/webhooks');
    await user.click(await screen.findByRole('button', { name: 'Deliveries' }));
    const dialog = await screen.findByRole('dialog');
    expect(await within(dialog).findByText('503')).toBeInTheDocument();
    expect(within(dialog).getByText('down for maintenance')).toBeInTheDocument();
    expect(within(dialog).getByText('failed')).toBeInTheDocument();
    await user.click(within(dialog).getByRole('button', { name: 'Redeliver' }));
    expect(calls.some((c) => c.method === 'POST' && c.path === '/api/v1/webhooks/wh1/deliveries/d1/redeliver')).toBe(true);
  });
});
