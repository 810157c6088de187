import createClient, { type Middleware } from 'openapi-fetch';
import type { paths } from './schema';

/** The same key the control plane's viewer page (/sessions/{id}/view) reads. */
export const TOKEN_KEY = 'streamspace_token';

export function getToken(): string | null {
  try {
    return localStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function setToken(token: string): void {
  localStorage.setItem(TOKEN_KEY, token);
}

export function clearToken(): void {
  localStorage.removeItem(TOKEN_KEY);
}

/** An error answered by the API, carrying the server's `{"error": {"code", "message"}}`. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  /** Seconds from a `Retry-After` header (429, 503), when the server sent one. */
  readonly retryAfter: number | null;

  constructor(status: number, code: string, message: string, retryAfter: number | null = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

/** The human-readable message of an API error body, whatever its shape. */
export function errorMessageFromBody(body: unknown, fallback: string): { code: string; message: string } {
  if (isRecord(body)) {
    const err = body.error;
    if (isRecord(err) && typeof err.message === 'string') {
      return { code: typeof err.code === 'string' ? err.code : 'error', message: err.message };
    }
    // FastAPI's default validation shape, in case a route bypasses the error handlers.
    if (Array.isArray(body.detail)) {
      const parts = body.detail.filter(isRecord).map((d) => {
        const loc = Array.isArray(d.loc) ? d.loc.filter((p) => p !== 'body').join('.') : '';
        return `${loc ? `${loc}: ` : ''}${typeof d.msg === 'string' ? d.msg : 'invalid'}`;
      });
      if (parts.length > 0) return { code: 'invalid_request', message: parts.join('; ') };
    }
    if (typeof body.detail === 'string') return { code: 'error', message: body.detail };
  }
  if (typeof body === 'string' && body.trim()) return { code: 'error', message: body.trim() };
  return { code: 'error', message: fallback };
}

export function parseRetryAfter(header: string | null): number | null {
  if (!header) return null;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds));
  const date = Date.parse(header);
  if (Number.isNaN(date)) return null;
  return Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

export function apiErrorFrom(response: Response, body: unknown): ApiError {
  const fallback = response.statusText || `Request failed (HTTP ${response.status})`;
  const { code, message } = errorMessageFromBody(body, fallback);
  return new ApiError(response.status, code, message, parseRetryAfter(response.headers.get('Retry-After')));
}

/** A message for any thrown value (ApiError, network failure, ...). */
export function errorMessage(err: unknown): string {
  if (err instanceof ApiError) return err.message;
  if (err instanceof TypeError) return 'Cannot reach the server';
  if (err instanceof Error) return err.message;
  return 'Something went wrong';
}

type UnauthorizedHandler = () => void;
let onUnauthorized: UnauthorizedHandler | null = null;

/** Called when any authenticated request answers 401 (the token is gone or expired). */
export function setUnauthorizedHandler(handler: UnauthorizedHandler | null): void {
  onUnauthorized = handler;
}

export function notifyUnauthorized(): void {
  onUnauthorized?.();
}

const LOGIN_PATH = '/api/v1/auth/login';

const auth: Middleware = {
  onRequest({ request }) {
    const token = getToken();
    if (token && !request.headers.has('Authorization')) {
      request.headers.set('Authorization', `Bearer ${token}`);
    }
    return request;
  },
  onResponse({ request, response }) {
    // A failed login is a wrong password, not an expired session.
    if (response.status === 401 && !new URL(request.url).pathname.startsWith(LOGIN_PATH)) {
      clearToken();
      notifyUnauthorized();
    }
    return response;
  },
};

function origin(): string {
  return typeof window !== 'undefined' ? window.location.origin : 'http://localhost';
}

export const api = createClient<paths>({
  baseUrl: origin(),
  // Looked up on each call so that tests (and anything else) can replace global fetch.
  fetch: (request: Request) => globalThis.fetch(request),
});
api.use(auth);

/** Resolve an openapi-fetch result to its data, or throw an ApiError with the server's message. */
export async function unwrap<T>(call: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  const { data, error, response } = await call;
  if (!response.ok) throw apiErrorFrom(response, error);
  return data as T;
}
