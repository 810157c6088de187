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
});
