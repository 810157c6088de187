import { screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { TOKEN_KEY } from '../../api/client';
import { alice, apiError, FakeWebSocket, json, mockApi, renderApp } from '../../test/utils';

const oidc = { name: 'Corp IdP', login_url: '/api/v1/auth/oidc/login' };

describe('Single sign-on', () => {
  it('offers "Sign in with <name>" next to the password form, back to the page wanted', async () => {
    mockApi({ 'GET /api/v1/auth/providers': () => json({ password: true, oidc }) });
    renderApp('/sessions', { signedIn: false });
    const link = await screen.findByRole('link', { name: 'Sign in with Corp IdP' });
    expect(link).toHaveAttribute('href', '/api/v1/auth/oidc/login?next=%2Fsessions');
    expect(screen.getByLabelText('Username')).toBeInTheDocument();
  });

  it('shows the button alone when the password form is turned off', async () => {
    mockApi({ 'GET /api/v1/auth/providers': () => json({ password: false, oidc }) });
    renderApp('/login', { signedIn: false });
    expect(await screen.findByRole('link', { name: 'Sign in with Corp IdP' })).toBeInTheDocument();
    expect(screen.queryByLabelText('Username')).not.toBeInTheDocument();
    expect(screen.queryByRole('button', { name: 'Sign in' })).not.toBeInTheDocument();
  });

  it('shows why a sign-in at the provider failed', () => {
    mockApi({});
    renderApp('/login?sso_error=the%20state%20does%20not%20match', { signedIn: false });
    expect(screen.getByRole('alert')).toHaveTextContent('the state does not match');
  });

  it('redeems the callback once and lands where the sign-in started', async () => {
    FakeWebSocket.install();
    const { calls } = mockApi({
      'POST /api/v1/auth/oidc/redeem': () => json({ access_token: 'sso-tok', token_type: 'bearer', expires_in: 3600, logout_url: null }),
      'GET /api/v1/auth/me': () => json(alice),
      'GET /api/v1/sessions': () => json([]),
    });
    renderApp('/auth/callback?next=%2Fsessions', { signedIn: false });
    expect(await screen.findByRole('heading', { name: 'My sessions' })).toBeInTheDocument();
    expect(localStorage.getItem(TOKEN_KEY)).toBe('sso-tok');
    expect(calls.filter((c) => c.path === '/api/v1/auth/oidc/redeem')).toHaveLength(1);
  });

  it('says so when the handoff was already used', async () => {
    mockApi({
      'POST /api/v1/auth/oidc/redeem': () => apiError(401, 'sso_handoff', 'this sign-in was used already'),
    });
    renderApp('/auth/callback?next=%2F', { signedIn: false });
    expect(await screen.findByRole('alert')).toHaveTextContent('this sign-in was used already');
    expect(screen.getByRole('link', { name: 'Back to sign in' })).toBeInTheDocument();
  });
});
