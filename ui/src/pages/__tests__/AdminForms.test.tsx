import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import type { User } from '../../api/types';
import { apiError, json, mockApi, renderApp, root, template } from '../../test/utils';

describe('Admin templates', () => {
  it('validates the form before sending, then shows the server refusal on the form', async () => {
    const { calls } = mockApi({
      'GET /api/v1/auth/me': () => json(root),
      'GET /api/v1/templates': () => json([template()]),
      'POST /api/v1/templates': () => apiError(409, 'conflict', "template 'gimp' already exists"),
    });
    const user = userEvent.setup();
    renderApp('/admin/templates');
    expect(await screen.findByRole('cell', { name: 'xterm' })).toBeInTheDocument();
    expect(document.querySelector('tr[data-template-name="xterm"]')).not.toBeNull();

    await user.click(screen.getByRole('button', { name: 'New template' }));
    const dialog = await screen.findByRole('dialog');
    const field = (label: string) => within(dialog).getByLabelText(label);

    await user.type(field('Name'), 'Bad_Name-');
    await user.type(field('Image'), 'has space');
    await user.clear(field('Idle timeout (s)'));
    await user.type(field('Idle timeout (s)'), '10');
    await user.click(within(dialog).getByRole('button', { name: 'Save' }));

    expect(within(dialog).getByText(/Lowercase letters, digits and dashes/)).toBeInTheDocument();
    expect(within(dialog).getByText('Display name is required')).toBeInTheDocument();
    expect(within(dialog).getByText('Image must not contain spaces')).toBeInTheDocument();
    expect(within(dialog).getByText('Idle timeout must be between 60 and 604800')).toBeInTheDocument();
    expect(calls.some((c) => c.method === 'POST')).toBe(false);

    await user.clear(field('Name'));
    await user.type(field('Name'), 'gimp');
    await user.type(field('Display name'), 'GIMP');
    await user.clear(field('Image'));
    await user.type(field('Image'), 'streamspace/gimp:2');
    await user.clear(field('Idle timeout (s)'));
    await user.type(field('Idle timeout (s)'), '600');
    await user.type(field('Memory limit (MB)'), '2048');
    expect(field('Internet access')).toBeChecked();
    await user.click(field('Internet access'));
    await user.click(within(dialog).getByRole('button', { name: 'Save' }));

    expect(await within(dialog).findByRole('alert')).toHaveTextContent("template 'gimp' already exists");
    const sent = calls.find((c) => c.method === 'POST')?.body as Record<string, unknown>;
    expect(sent).toMatchObject({
      name: 'gimp',
      display_name: 'GIMP',
      image: 'streamspace/gimp:2',
      idle_timeout_s: 600,
      memory_limit_mb: 2048,
      cpu_limit: null,
      vnc_port: 5900,
      persistent_home: true,
      egress: false,
    });
  });

  it('deletes a template after confirmation', async () => {
    let list = [template({ name: 'xterm' }), template({ name: 'firefox', display_name: 'Firefox' })];
    mockApi({
      'GET /api/v1/auth/me': () => json(root),
      'GET /api/v1/templates': () => json(list),
      'DELETE /api/v1/templates/:name': (_, p) => {
        list = list.filter((t) => t.name !== p.name);
        return new Response(null, { status: 204 });
      },
    });
    const user = userEvent.setup();
    renderApp('/admin/templates');
    await screen.findByRole('table');
    expect(screen.getByRole('button', { name: 'Edit xterm' })).toBeInTheDocument();
    await user.click(screen.getByRole('button', { name: 'Delete firefox' }));
    await user.click(within(await screen.findByRole('dialog')).getByRole('button', { name: 'Delete template' }));
    await waitFor(() => expect(document.querySelector('tr[data-template-name="firefox"]')).toBeNull());
    expect(document.querySelector('tr[data-template-name="xterm"]')).not.toBeNull();
  });
});

describe('Admin users', () => {
  it("clears a user's login lockout", async () => {
    const bob: User = {
      id: 'u-bob',
      username: 'bob',
      role: 'user',
      org_id: 'org',
      disabled: false,
      platform_admin: false,
      mfa_enabled: false,
    };
    const { calls } = mockApi({
      'GET /api/v1/auth/me': () => json(root),
      'GET /api/v1/users': () => json([root, bob]),
      'DELETE /api/v1/users/:id/lockout': () => json(null, 204),
    });
    const user = userEvent.setup();
    renderApp('/admin/users');
    await screen.findByRole('table');
    await user.click(screen.getByRole('button', { name: 'Clear the login lockout of bob' }));
    expect(await screen.findByText('bob can sign in again')).toBeInTheDocument();
    expect(calls.filter((c) => c.method === 'DELETE').map((c) => c.path)).toEqual(['/api/v1/users/u-bob/lockout']);
  });

  it('removes a user after asking, and the row goes', async () => {
    let users: User[] = [
      root,
      { id: 'u-bob', username: 'bob', role: 'user', org_id: 'org', disabled: false, platform_admin: false, mfa_enabled: false },
    ];
    const { calls } = mockApi({
      'GET /api/v1/auth/me': () => json(root),
      'GET /api/v1/users': () => json(users),
      'DELETE /api/v1/users/:id': () => {
        users = [root];
        return json({ id: 'u-bob', username: 'bob', sessions_not_terminated: [] });
      },
    });
    const user = userEvent.setup();
    renderApp('/admin/users');
    await screen.findByRole('table');
    expect(screen.queryByRole('button', { name: 'Remove root' })).not.toBeInTheDocument(); // not yourself
    await user.click(screen.getByRole('button', { name: 'Remove bob' }));
    expect(calls.filter((c) => c.method === 'DELETE')).toEqual([]); // asked first
    await user.click(within(await screen.findByRole('dialog')).getByRole('button', { name: 'Remove bob' }));
    await waitFor(() => expect(calls.filter((c) => c.method === 'DELETE').map((c) => c.path)).toEqual(['/api/v1/users/u-bob']));
    await waitFor(() => expect(document.querySelector('[data-username="bob"]')).toBeNull());
  });

  it('creates a user, disables one and changes a role', async () => {
    let users: User[] = [
      root,
      { id: 'u-bob', username: 'bob', role: 'user', org_id: 'org', disabled: false, platform_admin: false, mfa_enabled: false },
    ];
    const { calls } = mockApi({
      'GET /api/v1/auth/me': () => json(root),
      'GET /api/v1/users': () => json(users),
      'POST /api/v1/users': (c) => {
        const body = c.body as { username: string; role: 'admin' | 'user' };
        const u: User = {
          id: `u-${body.username}`,
          username: body.username,
          role: body.role,
          org_id: 'org',
          disabled: false,
          platform_admin: false,
          mfa_enabled: false,
        };
        users = [...users, u];
        return json(u, 201);
      },
      'PATCH /api/v1/users/:id': (c, p) => {
        users = users.map((u) => (u.id === p.id ? { ...u, ...(c.body as Partial<User>) } : u));
        return json(users.find((u) => u.id === p.id));
      },
    });
    const user = userEvent.setup();
    renderApp('/admin/users');
    await screen.findByRole('table');
    const row = (name: string) => document.querySelector<HTMLElement>(`tr[data-username="${name}"]`)!;

    expect(screen.getByRole('button', { name: 'Disable root' })).toBeInTheDocument();
    await user.click(screen.getByRole('button', { name: 'Disable bob' }));
    await waitFor(() => expect(within(row('bob')).getByText('disabled')).toBeInTheDocument());
    expect(within(row('bob')).getByRole('button', { name: 'Enable bob' })).toBeInTheDocument();

    await user.selectOptions(screen.getByRole('combobox', { name: 'Role for bob' }), 'admin');
    await waitFor(() => expect(screen.getByRole('combobox', { name: 'Role for bob' })).toHaveValue('admin'));

    await user.click(screen.getByRole('button', { name: 'New user' }));
    const dialog = await screen.findByRole('dialog');
    await user.type(within(dialog).getByLabelText('Username'), 'carol');
    await user.type(within(dialog).getByLabelText('Password'), 'short');
    await user.click(within(dialog).getByRole('button', { name: 'Create user' }));
    expect(within(dialog).getByText('At least 8 characters')).toBeInTheDocument();
    await user.type(within(dialog).getByLabelText('Password'), '-but-longer');
    await user.click(within(dialog).getByRole('button', { name: 'Create user' }));
    await waitFor(() => expect(row('carol')).not.toBeNull());

    expect(calls.filter((c) => c.method === 'PATCH').map((c) => c.body)).toEqual([{ disabled: true }, { role: 'admin' }]);
    expect(calls.find((c) => c.method === 'POST')?.body).toEqual({
      username: 'carol',
      password: 'short-but-longer',
      role: 'user',
      platform_admin: false,
    });
  });
});
