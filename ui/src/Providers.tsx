import { MantineProvider, localStorageColorSchemeManager } from '@mantine/core';
import { ModalsProvider } from '@mantine/modals';
import { Notifications } from '@mantine/notifications';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import type { ReactNode } from 'react';
import { ApiError } from './api/client';
import { AuthProvider } from './auth/AuthContext';
import { theme } from './theme';

export function makeQueryClient(): QueryClient {
  return new QueryClient({
    defaultOptions: {
      queries: {
        // Client errors (404, 403, 401...) will not get better by retrying.
        retry: (count, err) => !(err instanceof ApiError && err.status < 500) && count < 2,
        refetchOnWindowFocus: true,
        staleTime: 5_000,
      },
      mutations: { retry: false },
    },
  });
}

const colorSchemeManager = localStorageColorSchemeManager({ key: 'streamspace-color-scheme' });

/** Everything but the router (tests wrap this in a MemoryRouter). */
export function Providers({ children, client, env }: { children: ReactNode; client: QueryClient; env?: 'test' }) {
  return (
    <MantineProvider theme={theme} defaultColorScheme="auto" colorSchemeManager={colorSchemeManager} env={env}>
      <QueryClientProvider client={client}>
        <ModalsProvider>
          <Notifications position="top-right" limit={4} />
          <AuthProvider>{children}</AuthProvider>
        </ModalsProvider>
      </QueryClientProvider>
    </MantineProvider>
  );
}
