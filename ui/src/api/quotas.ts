import { useQuery } from '@tanstack/react-query';
import { api, unwrap } from './client';
import { keys } from './queries';
import type { components } from './schema';

export type Quota = components['schemas']['QuotaRead'];
export type QuotaScope = components['schemas']['QuotaScope'];

/** Under the sessions key: whatever refreshes the session lists refreshes the usage too. */
export const quotaKey = [...keys.sessions, 'quota'] as const;

export function useQuota() {
  return useQuery({
    queryKey: quotaKey,
    queryFn: (): Promise<Quota> => unwrap(api.GET('/api/v1/quota')),
    staleTime: 10_000,
    retry: false,
  });
}
