import { useQueryClient } from '@tanstack/react-query';
import { createContext, useContext, useEffect, useState, type ReactNode } from 'react';
import { ApiError, api, unwrap } from '../api/client';
import { applyEvent, EventsAuthError, EventsClient, eventsUrl, type LiveStatus } from '../api/events';
import { useAuth } from './AuthContext';

interface EventsValue {
  status: LiveStatus;
  podName: string | null;
}

const EventsContext = createContext<EventsValue>({ status: 'closed', podName: null });

/** A fresh ticket for each (re)connect: the login token itself never goes into a URL. */
async function ticketedUrl(): Promise<string> {
  try {
    const grant = await unwrap(api.POST('/api/v1/events/ticket'));
    return eventsUrl(grant.url);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) throw new EventsAuthError(error.message);
    throw error;
  }
}

/** Keeps the live-events socket open while signed in; its events update the query cache. */
export function EventsProvider({ children }: { children: ReactNode }) {
  const { token, expire } = useAuth();
  const qc = useQueryClient();
  const [value, setValue] = useState<EventsValue>({ status: 'connecting', podName: null });

  useEffect(() => {
    if (!token || typeof WebSocket === 'undefined') return;
    const client = new EventsClient({
      url: ticketedUrl,
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
