import { afterEach, describe, expect, it, vi } from 'vitest';
import { apiError, json, mockApi } from '../test/utils';
import { api, ApiError, errorMessage, getToken, setToken, setUnauthorizedHandler, TOKEN_KEY, unwrap } from './client';

afterEach(() => setUnauthorizedHandler(null));

describe('API client', () => {
  it('sends the stored token as a Bearer header', async () => {
    const { calls } = mockApi({ 'GET /api/v1/templates': () => json([]) });
    setToken('abc123');
    await unwrap(api.GET('/api/v1/templates'));
    expect(calls[0]?.headers.get('Authorization')).toBe('Bearer abc123');
    expect(localStorage.getItem(TOKEN_KEY)).toBe('abc123');
  });

  it('sends no Authorization header when signed out', async () => {
    const { calls } = mockApi({ 'GET /api/v1/templates': () => json([]) });
    await unwrap(api.GET('/api/v1/templates'));
    expect(calls[0]?.headers.has('Authorization')).toBe(false);
  });

  it('drops the token and reports a 401 from any call', async () => {
    mockApi({ 'GET /api/v1/sessions': () => apiError(401, 'unauthenticated', 'token expired') });
    const onUnauthorized = vi.fn();
    setUnauthorizedHandler(onUnauthorized);
    setToken('old');
    await expect(unwrap(api.GET('/api/v1/sessions'))).rejects.toMatchObject({ status: 401, message: 'token expired' });
    expect(getToken()).toBeNull();
    expect(onUnauthorized).toHaveBeenCalledOnce();
  });

  it('treats a 401 on login as wrong credentials, not an expired session', async () => {
    mockApi({ 'POST /api/v1/auth/login': () => apiError(401, 'unauthenticated', 'invalid username or password') });
    const onUnauthorized = vi.fn();
    setUnauthorizedHandler(onUnauthorized);
    const err = await unwrap(api.POST('/api/v1/auth/login', { body: { username: 'a', password: 'b' } })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(errorMessage(err)).toBe('invalid username or password');
    expect(onUnauthorized).not.toHaveBeenCalled();
  });

  it("extracts the server's message and code", async () => {
    mockApi({ 'POST /api/v1/sessions': () => apiError(503, 'unavailable', 'No agents available') });
    const err = await unwrap(api.POST('/api/v1/sessions', { body: { template: 'xterm' } })).catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 503, code: 'unavailable', message: 'No agents available' });
  });

  it('reads Retry-After (seconds) from a 429', async () => {
    mockApi({
      'POST /api/v1/auth/login': () => apiError(429, 'rate_limited', 'too many login attempts', { 'Retry-After': '17' }),
    });
    const err = await unwrap(api.POST('/api/v1/auth/login', { body: { username: 'a', password: 'b' } })).catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 429, retryAfter: 17 });
  });

  it('falls back to FastAPI validation details and to the status text', async () => {
    mockApi({
      'GET /api/v1/users': () => json({ detail: [{ loc: ['body', 'username'], msg: 'too short', type: 'x' }] }, 422),
      'GET /api/v1/pods': () => new Response('', { status: 502, statusText: 'Bad Gateway' }),
    });
    await expect(unwrap(api.GET('/api/v1/users'))).rejects.toThrow('username: too short');
    await expect(unwrap(api.GET('/api/v1/pods'))).rejects.toThrow('Bad Gateway');
  });

  it('describes a network failure plainly', () => {
    expect(errorMessage(new TypeError('fetch failed'))).toBe('Cannot reach the server');
  });
});
