import { QueryClient } from '@tanstack/react-query';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { FakeWebSocket, session } from '../test/utils';
import { applyEvent, EventsAuthError, EventsClient, eventsUrl, type LiveStatus } from './events';
import { keys } from './queries';
import type { Session } from './types';

function makeClient(overrides: Partial<ConstructorParameters<typeof EventsClient>[0]> = {}) {
  const statuses: LiveStatus[] = [];
  const onMessage = vi.fn();
  const onReconnect = vi.fn();
  const onAuthFailure = vi.fn();
  const client = new EventsClient({
    url: 'ws://example.test/api/v1/ws/events?ticket=t',
    onMessage,
    onReconnect,
    onAuthFailure,
    onStatus: (s) => statuses.push(s),
    createSocket: (url) => new FakeWebSocket(url) as unknown as WebSocket,
    baseDelayMs: 1000,
    maxDelayMs: 8000,
    ...overrides,
  });
  return { client, statuses, onMessage, onReconnect, onAuthFailure };
}

describe('EventsClient', () => {
  beforeEach(() => {
    FakeWebSocket.instances = [];
    vi.useFakeTimers();
  });

  it('builds the socket URL from the page location and the ticket grant', () => {
    expect(eventsUrl('/api/v1/ws/events?ticket=a', { protocol: 'https:', host: 'ss.example:8443' } as Location)).toBe(
      'wss://ss.example:8443/api/v1/ws/events?ticket=a',
    );
    expect(eventsUrl('/api/v1/ws/events?ticket=t', { protocol: 'http:', host: 'localhost:5173' } as Location)).toBe(
      'ws://localhost:5173/api/v1/ws/events?ticket=t',
    );
  });

  it('asks for a fresh URL (a new ticket) on every connect', async () => {
    let n = 0;
    const { client } = makeClient({ url: () => Promise.resolve(`ws://example.test/api/v1/ws/events?ticket=${++n}`) });
    client.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(FakeWebSocket.latest().url).toContain('ticket=1');
    FakeWebSocket.latest().serverClose(1006);
    await vi.advanceTimersByTimeAsync(1000);
    expect(FakeWebSocket.latest().url).toContain('ticket=2');
  });

  it('stops for good when no ticket is given because the login ended', async () => {
    const { client, onAuthFailure } = makeClient({ url: () => Promise.reject(new EventsAuthError('session has ended')) });
    client.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(onAuthFailure).toHaveBeenCalledOnce();
    expect(client.status).toBe('closed');
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeWebSocket.instances).toHaveLength(0);
  });

  it('goes live on hello and remembers the replica', () => {
    const { client, statuses, onMessage } = makeClient();
    client.start();
    const ws = FakeWebSocket.latest();
    ws.open();
    ws.message({ kind: 'hello', data: { pod_name: 'cp-0' } });
    expect(client.status).toBe('live');
    expect(statuses).toContain('live');
    expect(onMessage).toHaveBeenCalledWith({ kind: 'hello', data: { pod_name: 'cp-0' } });
  });

  it('reconnects with exponential backoff and asks for a refetch after reconnecting', () => {
    const { client, onReconnect } = makeClient();
    client.start();
    FakeWebSocket.latest().open();
    expect(onReconnect).not.toHaveBeenCalled();

    FakeWebSocket.latest().serverClose(1006);
    expect(client.status).toBe('reconnecting');
    expect(FakeWebSocket.instances).toHaveLength(1);
    vi.advanceTimersByTime(999);
    expect(FakeWebSocket.instances).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(FakeWebSocket.instances).toHaveLength(2);

    // the second attempt fails too: the wait doubles
    FakeWebSocket.latest().serverClose(1006);
    vi.advanceTimersByTime(1999);
    expect(FakeWebSocket.instances).toHaveLength(2);
    vi.advanceTimersByTime(1);
    expect(FakeWebSocket.instances).toHaveLength(3);

    FakeWebSocket.latest().open();
    expect(client.status).toBe('live');
    expect(onReconnect).toHaveBeenCalledOnce();

    // a success resets the backoff
    FakeWebSocket.latest().serverClose(1001);
    vi.advanceTimersByTime(1000);
    expect(FakeWebSocket.instances).toHaveLength(4);
  });

  it('caps the backoff', () => {
    const { client } = makeClient();
    expect([1, 2, 3, 4, 5, 9].map((n) => client.delayFor(n))).toEqual([1000, 2000, 4000, 8000, 8000, 8000]);
  });

  it('stops and reports an auth failure on close code 4401', () => {
    const { client, onAuthFailure } = makeClient();
    client.start();
    FakeWebSocket.latest().serverClose(4401, 'invalid token');
    expect(onAuthFailure).toHaveBeenCalledOnce();
    vi.advanceTimersByTime(60_000);
    expect(FakeWebSocket.instances).toHaveLength(1);
    expect(client.status).toBe('closed');
  });

  it('closes for good on close() and never reconnects', () => {
    const { client } = makeClient();
    client.start();
    const ws = FakeWebSocket.latest();
    ws.open();
    client.close();
    expect(ws.closedByClient).toBe(true);
    vi.advanceTimersByTime(60_000);
    expect(FakeWebSocket.instances).toHaveLength(1);
  });

  it('ignores malformed messages', () => {
    const { client, onMessage } = makeClient();
    client.start();
    const ws = FakeWebSocket.latest();
    ws.open();
    ws.onmessage?.(new MessageEvent('message', { data: 'not json' }));
    ws.message({ nope: true });
    expect(onMessage).not.toHaveBeenCalled();
  });
});

describe('applyEvent', () => {
  it('updates the cached session and invalidates session lists', () => {
    const qc = new QueryClient();
    qc.setQueryData(keys.session('s-1'), session({ id: 's-1', state: 'starting' }));
    qc.setQueryData(keys.sessionList({}), [session({ id: 's-1', state: 'starting' })]);
    applyEvent(qc, {
      kind: 'session',
      data: { id: 's-1', state: 'running', reason: 'ready', template: 'xterm', agent_id: 'a-2', updated_at: '2030-01-01T00:00:00Z' },
    });
    const s = qc.getQueryData<Session>(keys.session('s-1'));
    expect(s).toMatchObject({ state: 'running', state_reason: 'ready', agent_id: 'a-2' });
    expect(qc.getQueryState(keys.sessionList({}))?.isInvalidated).toBe(true);
  });

  it('invalidates agents, replicas and the overview on agent events', () => {
    const qc = new QueryClient();
    qc.setQueryData(keys.agents, []);
    qc.setQueryData(keys.pods, []);
    applyEvent(qc, { kind: 'agent', data: { id: 'a-1', status: 'offline', pod_name: null, epoch: 3 } });
    expect(qc.getQueryState(keys.agents)?.isInvalidated).toBe(true);
    expect(qc.getQueryState(keys.pods)?.isInvalidated).toBe(true);
  });
});
