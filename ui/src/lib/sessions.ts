import type { Session, SessionState } from '../api/types';

/** Every state's badge colour, in lifecycle order. A Record over the API's states: one the API
 * gains fails the type check until it has a colour here. */
export const STATE_COLORS: Record<SessionState, string> = {
  pending: 'gray',
  starting: 'blue',
  running: 'green',
  hibernating: 'violet',
  hibernated: 'indigo',
  waking: 'cyan',
  terminating: 'orange',
  terminated: 'dark',
  failed: 'red',
};

export const SESSION_STATES = Object.keys(STATE_COLORS) as SessionState[];

const ENDED = new Set<SessionState>(['terminated', 'failed']);
const NOT_TERMINABLE = new Set<SessionState>(['terminated', 'terminating', 'failed']);

export const isEnded = (state: SessionState) => ENDED.has(state);

/** Which actions make sense for a session in this state. */
export function sessionActions(state: SessionState) {
  return {
    open: !ENDED.has(state),
    hibernate: state === 'running',
    resume: state === 'hibernated',
    terminate: !NOT_TERMINABLE.has(state),
  };
}

/** States where the desktop can be shown (waking: the viewer page shows its own banner). */
export const showsDesktop = (state: SessionState) => state === 'running' || state === 'waking';

/** States that are on their way somewhere: worth polling when the live socket is down. */
export const isTransitional = (state: SessionState) => ['pending', 'starting', 'hibernating', 'waking', 'terminating'].includes(state);

export const viewerUrl = (id: string) => `/sessions/${encodeURIComponent(id)}/view`;

export function sessionMatches(s: Session, search: string): boolean {
  const q = search.trim().toLowerCase();
  if (!q) return true;
  return [s.template, s.owner ?? '', s.id, s.state].some((v) => v.toLowerCase().includes(q));
}
