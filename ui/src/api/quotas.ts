import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
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

export type QuotaUpdate = components['schemas']['QuotaUpdate'];

export const userQuotaKey = (id: string) => [...quotaKey, 'user', id] as const;

export function useUserQuota(id: string) {
  return useQuery({
    queryKey: userQuotaKey(id),
    queryFn: (): Promise<Quota> => unwrap(api.GET('/api/v1/users/{user_id}/quota', { params: { path: { user_id: id } } })),
  });
}

export function useSetUserQuota(id: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: QuotaUpdate): Promise<Quota> =>
      unwrap(api.PUT('/api/v1/users/{user_id}/quota', { params: { path: { user_id: id } }, body })),
    onSuccess: (quota) => {
      qc.setQueryData(userQuotaKey(id), quota);
      void qc.invalidateQueries({ queryKey: quotaKey });
    },
  });
}
