import { render } from '@testing-library/react';
import type { ReactElement, ReactNode } from 'react';
import { MemoryRouter, Route, Routes, useLocation } from 'react-router';
import { vi } from 'vitest';
import { TOKEN_KEY } from '../api/client';
import type { Session, Template, User } from '../api/types';
import { AppRoutes } from '../App';
import { makeQueryClient, Providers } from '../Providers';

// --- a fake API -------------------------------------------------------------

export interface Call {
  method: string;
  path: string;
  search: URLSearchParams;
  headers: Headers;
  body: unknown;
}

type Handler = (call: Call, params: Record<string, string>) => Response | Promise<Response>;

export function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(status === 204 ? null : JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json', ...headers },
  });
}

export function apiError(status: number, code: string, message: string, headers: Record<string, string> = {}): Response {
  return json({ error: { code, message } }, status, headers);
}

/**
 * Replace fetch with a router over `routes` ("GET /api/v1/sessions/:id": handler).
 * Unmatched requests answer 404 in the API's error shape. Returns the list of calls made.
 */
const TICKET_PATH = '/api/v1/events/ticket';

export function mockApi(routes: Record<string, Handler>) {
  const calls: Call[] = [];
  // The events socket's ticket, which every signed-in page asks for: mocked unless a test says otherwise.
  const withTicket: Record<string, Handler> = {
    [`POST ${TICKET_PATH}`]: () => json({ ticket: 'tk', url: '/api/v1/ws/events?ticket=tk', expires_in: 60 }),
    ...routes,
  };
  const compiled = Object.entries(withTicket).map(([key, handler]) => {
    const [method, pattern = ''] = key.split(' ');
    const names: string[] = [];
    const re = new RegExp(
      `^${pattern.replace(/:([a-z_]+)/gi, (_, n: string) => {
        names.push(n);
        return '([^/]+)';
      })}$`,
    );
    return { method, re, names, handler };
  });
  const fetchMock = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = input instanceof Request ? input : new Request(String(input), init);
    const url = new URL(request.url);
    const text = await request.text();
    const call: Call = {
      method: request.method,
      path: url.pathname,
      search: url.searchParams,
      headers: request.headers,
      body: text ? (JSON.parse(text) as unknown) : undefined,
    };
    // the default ticket is plumbing every signed-in page asks for: not a call tests count
    if (!(call.method === 'POST' && call.path === TICKET_PATH && !(`POST ${TICKET_PATH}` in routes))) calls.push(call);
    for (const r of compiled) {
      const m = r.method === call.method ? r.re.exec(call.path) : null;
      if (m) {
        const params = Object.fromEntries(r.names.map((n, i) => [n, decodeURIComponent(m[i + 1] ?? '')]));
        return r.handler(call, params);
      }
    }
    return apiError(404, 'not_found', `no mock for ${call.method} ${call.path}`);
  });
  vi.stubGlobal('fetch', fetchMock);
  return { calls, fetchMock };
}

// --- a fake WebSocket ---------------------------------------------------------

export class FakeWebSocket {
  static instances: FakeWebSocket[] = [];
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSING = 2;
  static readonly CLOSED = 3;
  readonly url: string;
  readyState = 0;
  onopen: ((ev: Event) => void) | null = null;
  onmessage: ((ev: MessageEvent) => void) | null = null;
  onclose: ((ev: CloseEvent) => void) | null = null;
  onerror: ((ev: Event) => void) | null = null;
  closedByClient = false;

  constructor(url: string) {
    this.url = url;
    FakeWebSocket.instances.push(this);
  }
  send() {}
  close() {
    this.closedByClient = true;
    this.readyState = 3;
  }
  // test helpers
  open() {
    this.readyState = 1;
    this.onopen?.(new Event('open'));
  }
  message(data: unknown) {
    this.onmessage?.(new MessageEvent('message', { data: JSON.stringify(data) }));
  }
  serverClose(code = 1006, reason = '') {
    this.readyState = 3;
    this.onclose?.(new CloseEvent('close', { code, reason }));
  }
  static latest(): FakeWebSocket {
    const ws = FakeWebSocket.instances.at(-1);
    if (!ws) throw new Error('no WebSocket was opened');
    return ws;
  }
  static install() {
    FakeWebSocket.instances = [];
    vi.stubGlobal('WebSocket', FakeWebSocket);
  }
}

// --- fixtures -------------------------------------------------------------------

export const alice: User = {
  id: 'u-alice',
  username: 'alice',
  role: 'user',
  org_id: 'org',
  disabled: false,
  platform_admin: false,
  mfa_enabled: false,
};
export const root: User = {
  id: 'u-root',
  username: 'root',
  role: 'admin',
  org_id: 'org',
  disabled: false,
  platform_admin: true,
  mfa_enabled: false,
};

export function template(over: Partial<Template> = {}): Template {
  return {
    id: `t-${over.name ?? 'xterm'}`,
    name: 'xterm',
    display_name: 'XTerm',
    description: 'A terminal',
    category: 'Development',
    icon: 'terminal',
    image: 'streamspace/xterm:latest',
    vnc_port: 5900,
    cpu_limit: null,
    memory_limit_mb: null,
    env: {},
    persistent_home: true,
    egress: true,
    idle_timeout_s: 1800,
    max_duration_s: 28800,
    created_at: '2024-01-01T00:00:00Z',
    updated_at: '2024-01-01T00:00:00Z',
    ...over,
  };
}

export function session(over: Partial<Session> = {}): Session {
  const now = new Date().toISOString();
  return {
    id: 's-1',
    template: 'xterm',
    user_id: 'u-alice',
    owner: 'alice',
    agent_id: 'agent-1',
    state: 'running',
    state_reason: '',
    created_at: new Date(Date.now() - 5 * 60_000).toISOString(),
    updated_at: now,
    state_changed_at: now,
    last_activity_at: new Date(Date.now() - 2 * 60_000).toISOString(),
    terminated_at: null,
    ...over,
  };
}

// --- rendering ---------------------------------------------------------------------

function LocationProbe() {
  const location = useLocation();
  return <div data-testid="location">{location.pathname}</div>;
}

/** Render the whole app at `path` (signed in as a token holder unless `signedIn: false`). */
export function renderApp(path: string, { signedIn = true }: { signedIn?: boolean } = {}) {
  if (signedIn) localStorage.setItem(TOKEN_KEY, 'test-token');
  const client = makeQueryClient();
  client.setDefaultOptions({ queries: { ...client.getDefaultOptions().queries, retry: false } });
  const utils = render(
    <MemoryRouter initialEntries={[path]}>
      <Providers client={client} env="test">
        <AppRoutes />
        <LocationProbe />
      </Providers>
    </MemoryRouter>,
  );
  return { ...utils, client };
}

/** Render one component with the providers (and a router at `path`). */
export function renderWithProviders(ui: ReactElement, { path = '/' }: { path?: string } = {}) {
  const client = makeQueryClient();
  client.setDefaultOptions({ queries: { retry: false } });
  const wrap = (children: ReactNode) => (
    <MemoryRouter initialEntries={[path]}>
      <Providers client={client} env="test">
        <Routes>
          <Route path="*" element={children} />
        </Routes>
        <LocationProbe />
      </Providers>
    </MemoryRouter>
  );
  return { ...render(wrap(ui)), client };
}
