import { screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import { TOKEN_KEY } from '../../api/client';
import { alice, apiError, json, mockApi, renderApp } from '../../test/utils';

describe('Account page', () => {
  it('checks the form, shows a wrong current password, then changes the password and stays signed in', async () => {
    let answer = apiError(403, 'wrong_current_password', 'the current password is wrong');
    const { calls } = mockApi({
      'GET /api/v1/auth/me': () => json(alice),
      'GET /api/v1/tokens': () => json([]),
      'POST /api/v1/auth/password': () => answer,
    });
    const user = userEvent.setup();
    renderApp('/account');
    await screen.findByRole('heading', { name: 'Change password' });

    await user.type(screen.getByLabelText('Current password'), 'old-pass-1');
    await user.type(screen.getByLabelText('New password'), 'new-pass-1');
    await user.type(screen.getByLabelText('Repeat the new password'), 'new-pass-2');
    await user.click(screen.getByRole('button', { name: 'Change password' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('The new passwords do not match');
    expect(calls.some((c) => c.path === '/api/v1/auth/password')).toBe(false);

    await user.clear(screen.getByLabelText('Repeat the new password'));
    await user.type(screen.getByLabelText('Repeat the new password'), 'new-pass-1');
    await user.click(screen.getByRole('button', { name: 'Change password' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('the current password is wrong');
    expect(localStorage.getItem(TOKEN_KEY)).not.toBeNull(); // a 403 does not sign out

    answer = new Response(null, { status: 204 });
    await user.click(screen.getByRole('button', { name: 'Change password' }));
    expect(await screen.findByText('Password changed. Your other logins have ended.')).toBeInTheDocument();
    expect(calls.filter((c) => c.path === '/api/v1/auth/password').at(-1)?.body).toEqual({
      current_password: 'old-pass-1',
      new_password: 'new-pass-1',
    });
    expect(screen.getByLabelText('Current password')).toHaveValue('');
  });

  it('creates an API token and shows its secret once, lists tokens with their last use, and revokes one after confirmation', async () => {
    const base = {
      user_id: alice.id,
      username: alice.username,
      created_at: '2026-01-01T00:00:00Z',
      expires_at: '2099-01-01T00:00:00Z',
      last_used_at: null,
      last_used_address: '',
      revoked_at: null,
      revoked_by: '',
    };
    const old = { ...base, id: 'aaaaaaaaaaaaaaaa', prefix: 'sst_aaaaaaaaaaaaaaaa', name: 'nightly', scope: 'read', status: 'active' };
    const made = { ...base, id: 'bbbbbbbbbbbbbbbb', prefix: 'sst_bbbbbbbbbbbbbbbb', name: 'ci deploy', scope: 'full', status: 'active' };
    let list: unknown[] = [{ ...old, last_used_at: '2026-01-02T00:00:00Z', last_used_address: '10.0.0.7' }];
    const { calls } = mockApi({
      'GET /api/v1/auth/me': () => json(alice),
      'GET /api/v1/tokens': () => json(list),
      'POST /api/v1/tokens': () => {
        list = [made, ...list];
        return json({ ...made, token: 'sst_bbbbbbbbbbbbbbbb_the-secret' }, 201);
      },
      'DELETE /api/v1/tokens/:id': () => {
        const revoked = { ...old, status: 'revoked', revoked_at: '2026-01-03T00:00:00Z', revoked_by: 'alice' };
        list = [made, revoked];
        return json(revoked);
      },
    });
    const user = userEvent.setup();
    renderApp('/account');
    const table = await screen.findByRole('table', { name: 'API tokens' });
    expect(table).toHaveTextContent('nightly');
    expect(table).toHaveTextContent('from 10.0.0.7');

    await user.click(screen.getByRole('button', { name: 'Create token' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('Give the token a name');
    await user.type(screen.getByLabelText('Token name'), 'ci deploy');
    await user.selectOptions(screen.getByLabelText('Scope'), 'full');
    await user.selectOptions(screen.getByLabelText('Expires after'), '90');
    await user.click(screen.getByRole('button', { name: 'Create token' }));
    expect(await screen.findByTestId('new-api-token')).toHaveTextContent('sst_bbbbbbbbbbbbbbbb_the-secret');
    expect(screen.getByText('It is shown only this once and cannot be displayed again.')).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Copy token' })).toBeInTheDocument();
    expect(calls.find((c) => c.method === 'POST' && c.path === '/api/v1/tokens')?.body).toEqual({
      name: 'ci deploy',
      scope: 'full',
      expires_in_days: 90,
    });
    await user.click(screen.getByRole('button', { name: 'Done' }));
    expect(screen.queryByTestId('new-api-token')).not.toBeInTheDocument();
    expect(await screen.findByText('ci deploy')).toBeInTheDocument();

    await user.click(screen.getByRole('button', { name: 'Revoke nightly' }));
    expect(calls.some((c) => c.method === 'DELETE')).toBe(false); // not before confirming
    await user.click(await screen.findByRole('button', { name: 'Revoke' }));
    expect(await screen.findByText('revoked')).toBeInTheDocument();
    expect(calls.find((c) => c.method === 'DELETE')?.path).toBe('/api/v1/tokens/aaaaaaaaaaaaaaaa');
  });
});
