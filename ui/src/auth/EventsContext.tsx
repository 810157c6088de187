import { useQueryClient } from '@tanstack/react-query';
import { createContext, useContext, useEffect, useState, type ReactNode } from 'react';
import { applyEvent, EventsClient, eventsUrl, type LiveStatus } from '../api/events';
import { useAuth } from './AuthContext';

interface EventsValue {
  status: LiveStatus;
  podName: string | null;
}

const EventsContext = createContext<EventsValue>({ status: 'closed', podName: null });

/** Keeps the live-events socket open while signed in; its events update the query cache. */
export function EventsProvider({ children }: { children: ReactNode }) {
  const { token, expire } = useAuth();
  const qc = useQueryClient();
  const [value, setValue] = useState<EventsValue>({ status: 'connecting', podName: null });

  useEffect(() => {
    if (!token || typeof WebSocket === 'undefined') return;
    const client = new EventsClient({
      url: eventsUrl(token),
      onMessage: (msg) => applyEvent(qc, msg),
      onStatus: (status, podName) => setValue({ status, podName }),
      onReconnect: () => void qc.invalidateQueries(),
      onAuthFailure: expire,
    });
    client.start();
    return () => client.close();
  }, [token, qc, expire]);

  return <EventsContext.Provider value={value}>{children}</EventsContext.Provider>;
}

export function useLiveEvents(): EventsValue {
  return useContext(EventsContext);
}
