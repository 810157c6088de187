import type { Session } from '../api/types';

export const STATE_COLORS: Record<string, string> = {
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

const ENDED = new Set(['terminated', 'failed']);
const NOT_TERMINABLE = new Set(['terminated', 'terminating', 'failed']);

export const isEnded = (state: string) => ENDED.has(state);

/** Which actions make sense for a session in this state. */
export function sessionActions(state: string) {
  return {
    open: !ENDED.has(state),
    hibernate: state === 'running',
    resume: state === 'hibernated',
    terminate: !NOT_TERMINABLE.has(state),
  };
}

/** States where the desktop can be shown (waking: the viewer page shows its own banner). */
export const showsDesktop = (state: string) => state === 'running' || state === 'waking';

/** States that are on their way somewhere: worth polling when the live socket is down. */
export const isTransitional = (state: string) => ['pending', 'starting', 'hibernating', 'waking', 'terminating'].includes(state);

export const viewerUrl = (id: string) => `/sessions/${encodeURIComponent(id)}/view`;

export function sessionMatches(s: Session, search: string): boolean {
  const q = search.trim().toLowerCase();
  if (!q) return true;
  return [s.template, s.owner ?? '', s.id, s.state].some((v) => v.toLowerCase().includes(q));
}
