import type { QueryClient } from '@tanstack/react-query';
import { keys } from './queries';
import type { Session, SessionState } from './types';

export type LiveStatus = 'connecting' | 'live' | 'reconnecting' | 'closed';

export interface SessionEvent {
  id: string;
  state: SessionState;
  reason?: string | null;
  template?: string;
  agent_id?: string | null;
  updated_at?: string;
}

export interface AgentEvent {
  id: string;
  status?: string;
  pod_name?: string | null;
  epoch?: number;
}

export type EventMessage =
  { kind: 'hello'; data: { pod_name: string } } | { kind: 'session'; data: SessionEvent } | { kind: 'agent'; data: AgentEvent };

/** WebSocket close codes meaning "your token is not (or no longer) valid". */
const AUTH_CLOSE_CODES = new Set([4401, 4403, 1008]);

export interface EventsClientOptions {
  /** The socket's URL, or a function giving a fresh one for each (re)connect (a new ticket). */
  url: string | (() => Promise<string>);
  onMessage: (msg: EventMessage) => void;
  onStatus?: (status: LiveStatus, podName: string | null) => void;
  /** Called after a reconnect (not the first connect): anything may have been missed meanwhile. */
  onReconnect?: () => void;
  /** The server refused the token: do not retry. */
  onAuthFailure?: () => void;
  createSocket?: (url: string) => WebSocket;
  /** First retry delay (ms); doubles on each failure up to maxDelayMs. */
  baseDelayMs?: number;
  maxDelayMs?: number;
}

/** The events socket's absolute URL from the path a ticket grant gives (`/api/v1/ws/events?ticket=…`). */
export function eventsUrl(path: string, loc: Location = window.location): string {
  const scheme = loc.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${loc.host}${path}`;
}

/** Thrown by a URL provider when the login is no longer valid: the client stops for good. */
export class EventsAuthError extends Error {}

function parse(raw: unknown): EventMessage | null {
  if (typeof raw !== 'string') return null;
  try {
    const msg = JSON.parse(raw) as { kind?: unknown; data?: unknown };
    if (typeof msg.kind !== 'string' || typeof msg.data !== 'object' || msg.data === null) return null;
    return msg as EventMessage;
  } catch {
    return null;
  }
}

/** The live-events socket: reconnects by itself with exponential backoff until closed. */
export class EventsClient {
  private readonly opts: Required<Omit<EventsClientOptions, 'onReconnect' | 'onAuthFailure' | 'onStatus'>> & EventsClientOptions;
  private socket: WebSocket | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private attempts = 0;
  private everOpened = false;
  private stopped = false;
  private podName: string | null = null;
  status: LiveStatus = 'connecting';

  constructor(opts: EventsClientOptions) {
    this.opts = {
      createSocket: (url) => new WebSocket(url),
      baseDelayMs: 1000,
      maxDelayMs: 30_000,
      ...opts,
    };
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  /** Close for good (logout, unmount). */
  close(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
      try {
        socket.close(1000, 'closed by client');
      } catch {
        /* already closed */
      }
    }
    this.setStatus('closed');
  }

  /** The delay before retry number `attempt` (1-based). */
  delayFor(attempt: number): number {
    return Math.min(this.opts.maxDelayMs, this.opts.baseDelayMs * 2 ** Math.max(0, attempt - 1));
  }

  private setStatus(status: LiveStatus): void {
    this.status = status;
    this.opts.onStatus?.(status, this.podName);
  }

  private connect(): void {
    if (this.stopped) return;
    const { url } = this.opts;
    if (typeof url === 'string') {
      this.open(url);
      return;
    }
    url().then(
      (resolved) => {
        if (!this.stopped) this.open(resolved);
      },
      (error: unknown) => {
        if (this.stopped) return;
        if (error instanceof EventsAuthError) this.authFailed();
        else this.scheduleRetry();
      },
    );
  }

  private authFailed(): void {
    this.stopped = true;
    this.setStatus('closed');
    this.opts.onAuthFailure?.();
  }

  private open(url: string): void {
    let socket: WebSocket;
    try {
      socket = this.opts.createSocket(url);
    } catch {
      this.scheduleRetry();
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      const reconnected = this.everOpened;
      this.everOpened = true;
      this.attempts = 0;
      this.setStatus('live');
      if (reconnected) this.opts.onReconnect?.();
    };
    socket.onmessage = (ev: MessageEvent) => {
      const msg = parse(ev.data);
      if (!msg) return;
      if (msg.kind === 'hello') {
        this.podName = msg.data.pod_name;
        this.setStatus('live');
      }
      this.opts.onMessage(msg);
    };
    socket.onclose = (ev: CloseEvent) => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (AUTH_CLOSE_CODES.has(ev.code)) {
        this.authFailed();
        return;
      }
      this.scheduleRetry();
    };
    socket.onerror = () => {
      /* onclose follows and schedules the retry */
    };
  }

  private scheduleRetry(): void {
    if (this.stopped) return;
    this.attempts += 1;
    this.setStatus('reconnecting');
    this.timer = setTimeout(() => {
      this.timer = null;
      this.connect();
    }, this.delayFor(this.attempts));
  }
}

/** Apply one event to the query cache. */
export function applyEvent(qc: QueryClient, msg: EventMessage): void {
  if (msg.kind === 'session') {
    const ev = msg.data;
    qc.setQueryData<Session>(keys.session(ev.id), (old) =>
      old
        ? {
            ...old,
            state: ev.state,
            state_reason: ev.reason ?? old.state_reason,
            agent_id: ev.agent_id !== undefined ? ev.agent_id : old.agent_id,
            updated_at: ev.updated_at ?? old.updated_at,
            state_changed_at: old.state !== ev.state ? (ev.updated_at ?? old.state_changed_at) : old.state_changed_at,
          }
        : old,
    );
    void qc.invalidateQueries({ queryKey: keys.sessions });
    void qc.invalidateQueries({ queryKey: keys.overview });
  } else if (msg.kind === 'agent') {
    void qc.invalidateQueries({ queryKey: keys.agents });
    void qc.invalidateQueries({ queryKey: keys.pods });
    void qc.invalidateQueries({ queryKey: keys.overview });
  }
}
