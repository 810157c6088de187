import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import { TOKEN_KEY } from '../../api/client';
import type { MfaStatus, User } from '../../api/types';
import { alice, apiError, FakeWebSocket, json, mockApi, renderApp, root } from '../../test/utils';

const QR = 'data:image/svg+xml;charset=utf-8,%3Csvg%3E%3C/svg%3E';
const CODES = Array.from({ length: 10 }, (_, i) => `aaaa-bbbb-cccc-000${i}`);

function challenge(enrol: boolean) {
  const code = enrol ? 'mfa_enrolment_required' : 'mfa_required';
  return json({ error: { code, message: 'second step' }, mfa: { challenge: 'ch-1', expires_in: 300, enrol } }, 401);
}

async function signIn(user: ReturnType<typeof userEvent.setup>) {
  await user.type(screen.getByLabelText('Username'), 'alice');
  await user.type(screen.getByLabelText('Password'), 'secret-pw');
  await user.click(screen.getByRole('button', { name: 'Sign in' }));
}

describe('Login with a second factor', () => {
  it('asks for the code after the password, refuses a wrong one, then signs in', async () => {
    FakeWebSocket.install();
    let answer = apiError(401, 'invalid_mfa_code', 'wrong or already used code');
    const { calls } = mockApi({
      'POST /api/v1/auth/login': () => challenge(false),
      'POST /api/v1/auth/login/mfa': () => answer,
      'GET /api/v1/auth/me': () => json(alice),
      'GET /api/v1/sessions': () => json([]),
    });
    const user = userEvent.setup();
    renderApp('/sessions', { signedIn: false });
    await signIn(user);

    await user.type(await screen.findByLabelText('Authentication code'), '123456');
    await user.click(screen.getByRole('button', { name: 'Verify' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('That code is wrong or was already used');
    expect(localStorage.getItem(TOKEN_KEY)).toBeNull();

    answer = json({ access_token: 'tok-2', token_type: 'bearer', expires_in: 3600 });
    await user.click(screen.getByRole('button', { name: 'Use a recovery code' }));
    await user.type(screen.getByLabelText('Recovery code'), 'aaaa-bbbb-cccc-dddd');
    await user.click(screen.getByRole('button', { name: 'Verify' }));
    expect(await screen.findByRole('heading', { name: 'My sessions' })).toBeInTheDocument();
    expect(localStorage.getItem(TOKEN_KEY)).toBe('tok-2');
    const steps = calls.filter((c) => c.path === '/api/v1/auth/login/mfa').map((c) => c.body);
    expect(steps).toEqual([
      { challenge: 'ch-1', code: '123456' },
      { challenge: 'ch-1', recovery_code: 'aaaa-bbbb-cccc-dddd' },
    ]);
  });

  it('enrols during the login when the org requires it and shows the recovery codes before going on', async () => {
    FakeWebSocket.install();
    mockApi({
      'POST /api/v1/auth/login': () => challenge(true),
      'POST /api/v1/auth/login/mfa/enrolment': () => json({ secret: 'JBSWY3DPEHPK3PXP', otpauth_uri: 'otpauth://totp/x', qr_svg: QR }),
      'POST /api/v1/auth/login/mfa': () => json({ access_token: 'tok-3', token_type: 'bearer', expires_in: 3600, recovery_codes: CODES }),
      'GET /api/v1/auth/me': () => json(alice),
      'GET /api/v1/sessions': () => json([]),
    });
    const user = userEvent.setup();
    renderApp('/sessions', { signedIn: false });
    await signIn(user);

    expect(await screen.findByRole('img', { name: 'QR code for your authenticator app' })).toHaveAttribute('src', QR);
    expect(screen.getByTestId('mfa-secret')).toHaveTextContent('JBSWY3DPEHPK3PXP');
    await user.type(screen.getByLabelText('Authentication code'), '654321');
    await user.click(screen.getByRole('button', { name: 'Verify' }));
    expect(await screen.findByText(CODES[0] ?? '')).toBeInTheDocument();
    expect(localStorage.getItem(TOKEN_KEY)).toBeNull(); // not before the codes were seen
    await user.click(screen.getByRole('button', { name: 'Continue' }));
    expect(await screen.findByRole('heading', { name: 'My sessions' })).toBeInTheDocument();
    expect(localStorage.getItem(TOKEN_KEY)).toBe('tok-3');
  });
});

describe('Account: two-factor authentication', () => {
  it('sets it up with a QR code and a first code, then shows the recovery codes once', async () => {
    let status: MfaStatus = { enabled: false, confirmed_at: null, recovery_codes_left: 0, required: false, available: true };
    const { calls } = mockApi({
      'GET /api/v1/auth/me': () => json(alice),
      'GET /api/v1/tokens': () => json([]),
      'GET /api/v1/auth/mfa': () => json(status),
      'POST /api/v1/auth/mfa/enrolment': () => json({ secret: 'JBSWY3DPEHPK3PXP', otpauth_uri: 'otpauth://totp/x', qr_svg: QR }),
      'POST /api/v1/auth/mfa/enrolment/confirm': () => {
        status = { ...status, enabled: true, recovery_codes_left: 10 };
        return json({ recovery_codes: CODES });
      },
      'POST /api/v1/auth/mfa/disable': () => apiError(403, 'wrong_proof', 'the code or password is wrong'),
    });
    const user = userEvent.setup();
    renderApp('/account');
    await user.click(await screen.findByRole('button', { name: 'Set up two-factor authentication' }));
    expect(await screen.findByRole('img', { name: 'QR code for your authenticator app' })).toBeInTheDocument();
    await user.type(screen.getByLabelText('Code from the app'), '123456');
    await user.click(screen.getByRole('button', { name: 'Turn on' }));
    expect(await screen.findByText(CODES[9] ?? '')).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Copy codes' })).toBeInTheDocument();
    await user.click(screen.getByRole('button', { name: 'I have saved them' }));
    expect(await screen.findByText('10 recovery codes left.')).toBeInTheDocument();
    expect(screen.queryByText(CODES[9] ?? '')).toBeNull();

    await user.type(screen.getByLabelText('Current code or password'), 'not-my-password');
    await user.click(screen.getByRole('button', { name: 'Turn off' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('the code or password is wrong');
    expect(calls.find((c) => c.path === '/api/v1/auth/mfa/disable')?.body).toEqual({ password: 'not-my-password' });
    expect(localStorage.getItem(TOKEN_KEY)).not.toBeNull();
  });
});

describe('Admin users: MFA', () => {
  it('shows who has MFA and resets it after asking', async () => {
    let bob: User = {
      id: 'u-bob',
      username: 'bob',
      role: 'user',
      org_id: 'org',
      disabled: false,
      platform_admin: false,
      mfa_enabled: true,
    };
    const { calls } = mockApi({
      'GET /api/v1/auth/me': () => json(root),
      'GET /api/v1/users': () => json([root, bob]),
      'GET /api/v1/orgs/:id/mfa': () => json({ org_id: 'org', required: false }),
      'PUT /api/v1/orgs/:id/mfa': (c) => json({ org_id: 'org', ...(c.body as object) }),
      'DELETE /api/v1/users/:id/mfa': () => {
        bob = { ...bob, mfa_enabled: false };
        return json(null, 204);
      },
    });
    const user = userEvent.setup();
    renderApp('/admin/users');
    await screen.findByRole('table');
    expect(screen.getByText('MFA')).toBeInTheDocument();
    await user.click(screen.getByRole('button', { name: 'Reset MFA of bob' }));
    const dialog = await screen.findByRole('dialog', { name: 'Reset two-factor authentication' });
    await user.click(within(dialog).getByRole('button', { name: 'Reset MFA' }));
    await waitFor(() => expect(screen.queryByRole('button', { name: 'Reset MFA of bob' })).toBeNull());
    expect(screen.queryByText('MFA')).toBeNull();
    expect(calls.filter((c) => c.method === 'DELETE').map((c) => c.path)).toEqual(['/api/v1/users/u-bob/mfa']);

    await user.click(screen.getByRole('switch', { name: /Require two-factor authentication/ }));
    await waitFor(() => expect(calls.find((c) => c.method === 'PUT')?.body).toEqual({ required: true }));
    expect(calls.find((c) => c.method === 'PUT')?.path).toBe('/api/v1/orgs/org/mfa');
  });
});
