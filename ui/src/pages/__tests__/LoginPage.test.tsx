import { act, screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it, vi } from 'vitest';
import { TOKEN_KEY } from '../../api/client';
import { alice, apiError, FakeWebSocket, json, mockApi, renderApp } from '../../test/utils';

async function signIn(user: ReturnType<typeof userEvent.setup>, username = 'alice', password = 'secret-pw') {
  await user.type(screen.getByLabelText('Username'), username);
  await user.type(screen.getByLabelText('Password'), password);
  await user.click(screen.getByRole('button', { name: 'Sign in' }));
}

describe('Login', () => {
  it('sends a signed-out visitor to /login and back to the page they wanted after signing in', async () => {
    FakeWebSocket.install();
    const { calls } = mockApi({
      'POST /api/v1/auth/login': () => json({ access_token: 'tok-1', token_type: 'bearer', expires_in: 3600 }),
      'GET /api/v1/auth/me': () => json(alice),
      'GET /api/v1/sessions': () => json([]),
    });
    const user = userEvent.setup();
    renderApp('/sessions', { signedIn: false });

    expect(await screen.findByRole('button', { name: 'Sign in' })).toBeInTheDocument();
    expect(screen.getByTestId('location')).toHaveTextContent('/login');

    await signIn(user);

    expect(await screen.findByRole('heading', { name: 'My sessions' })).toBeInTheDocument();
    expect(screen.getByTestId('location')).toHaveTextContent('/sessions');
    expect(localStorage.getItem(TOKEN_KEY)).toBe('tok-1');
    expect(calls.find((c) => c.path === '/api/v1/auth/login')?.body).toEqual({ username: 'alice', password: 'secret-pw' });
    expect(screen.getByText('alice')).toBeInTheDocument();
  });

  it('shows the server message for wrong credentials', async () => {
    mockApi({ 'POST /api/v1/auth/login': () => apiError(401, 'unauthenticated', 'Invalid username or password') });
    const user = userEvent.setup();
    renderApp('/login', { signedIn: false });
    await signIn(user, 'alice', 'wrong');
    expect(await screen.findByRole('alert')).toHaveTextContent('Invalid username or password');
    expect(screen.getByTestId('location')).toHaveTextContent('/login');
    expect(localStorage.getItem(TOKEN_KEY)).toBeNull();
  });

  it('counts down a rate limit and keeps the button disabled until it ends', async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    mockApi({
      'POST /api/v1/auth/login': () => apiError(429, 'rate_limited', 'too many attempts', { 'Retry-After': '3' }),
    });
    const user = userEvent.setup({ advanceTimers: vi.advanceTimersByTime });
    renderApp('/login', { signedIn: false });
    await signIn(user);

    expect(await screen.findByRole('alert')).toHaveTextContent('Too many attempts, try again in 3 s');
    expect(screen.getByRole('button', { name: 'Sign in' })).toBeDisabled();

    await act(() => vi.advanceTimersByTimeAsync(1100));
    expect(screen.getByRole('alert')).toHaveTextContent('try again in 2 s');

    await act(() => vi.advanceTimersByTimeAsync(2500));
    await waitFor(() => expect(screen.queryByRole('alert')).not.toBeInTheDocument());
    expect(screen.getByRole('button', { name: 'Sign in' })).toBeEnabled();
  });

  it('logs out: drops the token, closes the live socket and returns to the login page', async () => {
    FakeWebSocket.install();
    const { calls } = mockApi({
      'GET /api/v1/auth/me': () => json(alice),
      'GET /api/v1/templates': () => json([]),
      'POST /api/v1/auth/logout': () => new Response(null, { status: 204 }),
    });
    const user = userEvent.setup();
    renderApp('/');
    await screen.findByRole('heading', { name: 'Catalog' });
    const ws = await waitFor(() => FakeWebSocket.latest());
    expect(ws.url).toContain('/api/v1/ws/events?ticket=tk');
    expect(ws.url).not.toContain('test-token'); // the login token never goes into a URL

    await user.click(screen.getByRole('button', { name: 'Log out' }));

    expect(await screen.findByRole('button', { name: 'Sign in' })).toBeInTheDocument();
    expect(localStorage.getItem(TOKEN_KEY)).toBeNull();
    expect(ws.closedByClient).toBe(true);
    expect(calls.some((c) => c.path === '/api/v1/auth/logout')).toBe(true);
  });

  it('goes to the login page when the token has expired', async () => {
    mockApi({ 'GET /api/v1/auth/me': () => apiError(401, 'unauthenticated', 'token expired') });
    renderApp('/sessions');
    expect(await screen.findByRole('button', { name: 'Sign in' })).toBeInTheDocument();
    expect(localStorage.getItem(TOKEN_KEY)).toBeNull();
  });
});
