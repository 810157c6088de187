import { useInfiniteQuery, useMutation, useQuery, useQueryClient, type QueryClient } from '@tanstack/react-query';
import { api, apiErrorFrom, getToken, unwrap } from './client';
import type {
  Agent,
  AgentKey,
  ApiToken,
  ApiTokenCreate,
  ApiTokenCreated,
  AuditPage,
  Overview,
  Replica,
  Session,
  Template,
  TemplateCreate,
  TemplateUpdate,
  User,
  UserCreate,
  UserRemoved,
  UserUpdate,
} from './types';

export const keys = {
  me: ['me'] as const,
  templates: ['templates'] as const,
  sessions: ['sessions'] as const,
  sessionList: (opts: SessionListOptions) => ['sessions', opts] as const,
  session: (id: string) => ['session', id] as const,
  agents: ['agents'] as const,
  pods: ['pods'] as const,
  users: ['users'] as const,
  overview: ['overview'] as const,
  audit: (filter: AuditFilter) => ['audit', filter] as const,
};

/** The audit trail's filters; empty strings filter nothing. */
export interface AuditFilter {
  action: string;
  actor: string;
  target: string;
  since: string;
}

function auditQuery(filter: AuditFilter): Record<string, string> {
  return Object.fromEntries(Object.entries(filter).filter(([, v]) => v !== ''));
}

export interface SessionListOptions {
  all?: boolean;
  includeTerminated?: boolean;
  state?: string;
}

// --- queries ---------------------------------------------------------------

export function useMe(enabled = true) {
  return useQuery({
    queryKey: keys.me,
    queryFn: () => unwrap(api.GET('/api/v1/auth/me')),
    enabled,
    staleTime: 60_000,
  });
}

export function useTemplates() {
  return useQuery({
    queryKey: keys.templates,
    queryFn: (): Promise<Template[]> => unwrap(api.GET('/api/v1/templates')),
  });
}

export function useSessions(opts: SessionListOptions, refetchInterval: number | false = false) {
  return useQuery({
    queryKey: keys.sessionList(opts),
    queryFn: (): Promise<Session[]> =>
      unwrap(
        api.GET('/api/v1/sessions', {
          params: {
            query: {
              all: opts.all || undefined,
              include_terminated: opts.includeTerminated || undefined,
              state: opts.state || undefined,
            },
          },
        }),
      ),
    refetchInterval,
  });
}

export function useSession(id: string, refetchInterval: number | false | ((s: Session | undefined) => number | false)) {
  return useQuery({
    queryKey: keys.session(id),
    queryFn: (): Promise<Session> => unwrap(api.GET('/api/v1/sessions/{session_id}', { params: { path: { session_id: id } } })),
    refetchInterval: typeof refetchInterval === 'function' ? (q) => refetchInterval(q.state.data) : refetchInterval,
  });
}

export function useAgents() {
  return useQuery({
    queryKey: keys.agents,
    queryFn: (): Promise<Agent[]> => unwrap(api.GET('/api/v1/agents')),
    refetchInterval: 30_000,
  });
}

export function usePods() {
  return useQuery({
    queryKey: keys.pods,
    queryFn: (): Promise<Replica[]> => unwrap(api.GET('/api/v1/pods')),
    refetchInterval: 30_000,
  });
}

export function useUsers() {
  return useQuery({
    queryKey: keys.users,
    queryFn: (): Promise<User[]> => unwrap(api.GET('/api/v1/users')),
  });
}

export function useOverview(minutes = 60, buckets = 30) {
  return useQuery({
    queryKey: [...keys.overview, minutes, buckets],
    queryFn: (): Promise<Overview> => unwrap(api.GET('/api/v1/admin/overview', { params: { query: { minutes, buckets } } })),
    refetchInterval: 15_000,
  });
}

/** The audit trail newest first, a page at a time: `fetchNextPage` reads older events. */
export function useAudit(filter: AuditFilter) {
  return useInfiniteQuery({
    queryKey: keys.audit(filter),
    queryFn: ({ pageParam }): Promise<AuditPage> =>
      unwrap(api.GET('/api/v1/audit', { params: { query: { ...auditQuery(filter), cursor: pageParam, limit: 100 } } })),
    initialPageParam: '',
    getNextPageParam: (last) => last.next_cursor ?? undefined,
  });
}

/** Every event the filter matches as JSON lines (the server streams them), for a download. */
export async function exportAudit(filter: AuditFilter): Promise<Blob> {
  const url = new URL('/api/v1/audit/export', window.location.origin);
  for (const [k, v] of Object.entries(auditQuery(filter))) url.searchParams.set(k, v);
  const token = getToken();
  const response = await fetch(url, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  if (!response.ok) {
    const body: unknown = await response.json().catch(() => null);
    throw apiErrorFrom(response, body);
  }
  return response.blob();
}

// --- mutations -------------------------------------------------------------

/** Put a session the server returned into the cache and refresh every list that may show it. */
export function storeSession(qc: QueryClient, session: Session): void {
  qc.setQueryData(keys.session(session.id), session);
  void qc.invalidateQueries({ queryKey: keys.sessions });
}

export function useLaunchSession() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (template: string): Promise<Session> => unwrap(api.POST('/api/v1/sessions', { body: { template } })),
    onSuccess: (session) => storeSession(qc, session),
  });
}

export type SessionAction = 'hibernate' | 'resume' | 'terminate';

export function useSessionAction() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: ({ id, action }: { id: string; action: SessionAction }): Promise<Session> => {
      const path = { params: { path: { session_id: id } } };
      switch (action) {
        case 'hibernate':
          return unwrap(api.POST('/api/v1/sessions/{session_id}/hibernate', path));
        case 'resume':
          return unwrap(api.POST('/api/v1/sessions/{session_id}/resume', path));
        case 'terminate':
          return unwrap(api.DELETE('/api/v1/sessions/{session_id}', path));
      }
    },
    onSuccess: (session) => storeSession(qc, session),
  });
}

export type AgentAction = 'approve' | 'reject';

export function useAgentAction() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: ({ id, action }: { id: string; action: AgentAction }): Promise<Agent> => {
      const path = { params: { path: { agent_id: id } } };
      return action === 'approve'
        ? unwrap(api.POST('/api/v1/admin/agents/{agent_id}/approve', path))
        : unwrap(api.POST('/api/v1/admin/agents/{agent_id}/reject', path));
    },
    onSuccess: (agent) => {
      qc.setQueryData<Agent[]>(keys.agents, (old) => old?.map((a) => (a.id === agent.id ? agent : a)));
      void qc.invalidateQueries({ queryKey: keys.agents });
      void qc.invalidateQueries({ queryKey: keys.overview });
    },
  });
}

export function useRotateKey() {
  return useMutation({
    mutationFn: (id: string): Promise<AgentKey> =>
      unwrap(api.POST('/api/v1/admin/agents/{agent_id}/rotate-key', { params: { path: { agent_id: id } } })),
  });
}

export function useSaveTemplate() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (
      input: { mode: 'create'; body: TemplateCreate } | { mode: 'edit'; name: string; body: TemplateUpdate },
    ): Promise<Template> =>
      input.mode === 'create'
        ? unwrap(api.POST('/api/v1/templates', { body: input.body }))
        : unwrap(api.PATCH('/api/v1/templates/{name}', { params: { path: { name: input.name } }, body: input.body })),
    onSuccess: () => void qc.invalidateQueries({ queryKey: keys.templates }),
  });
}

export function useDeleteTemplate() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (name: string): Promise<unknown> => unwrap(api.DELETE('/api/v1/templates/{name}', { params: { path: { name } } })),
    onSuccess: () => void qc.invalidateQueries({ queryKey: keys.templates }),
  });
}

export function useCreateUser() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: UserCreate): Promise<User> => unwrap(api.POST('/api/v1/users', { body })),
    onSuccess: () => void qc.invalidateQueries({ queryKey: keys.users }),
  });
}

/** Give a user their whole failed-login budget back (their address's budget is left to expire). */
export function useClearLockout() {
  return useMutation({
    mutationFn: (id: string): Promise<unknown> =>
      unwrap(api.DELETE('/api/v1/users/{user_id}/lockout', { params: { path: { user_id: id } } })),
  });
}

export function useRemoveUser() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: string): Promise<UserRemoved> => unwrap(api.DELETE('/api/v1/users/{user_id}', { params: { path: { user_id: id } } })),
    onSuccess: (removed) => {
      qc.setQueryData<User[]>(keys.users, (old) => old?.filter((u) => u.id !== removed.id));
      void qc.invalidateQueries({ queryKey: keys.users });
    },
  });
}

export function useUpdateUser() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: ({ id, body }: { id: string; body: UserUpdate }): Promise<User> =>
      unwrap(api.PATCH('/api/v1/users/{user_id}', { params: { path: { user_id: id } }, body })),
    onSuccess: (user) => {
      qc.setQueryData<User[]>(keys.users, (old) => old?.map((u) => (u.id === user.id ? user : u)));
      void qc.invalidateQueries({ queryKey: keys.users });
    },
  });
}

// --- personal API tokens -----------------------------------------------------

export const apiTokensKey = ['api-tokens'] as const;

export function useApiTokens() {
  return useQuery({
    queryKey: apiTokensKey,
    queryFn: (): Promise<ApiToken[]> => unwrap(api.GET('/api/v1/tokens')),
  });
}

/** The answer carries the token itself: the only time it is ever shown. */
export function useCreateApiToken() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: ApiTokenCreate): Promise<ApiTokenCreated> => unwrap(api.POST('/api/v1/tokens', { body })),
    onSuccess: () => void qc.invalidateQueries({ queryKey: apiTokensKey }),
  });
}

export function useRevokeApiToken() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: string): Promise<ApiToken> => unwrap(api.DELETE('/api/v1/tokens/{token_id}', { params: { path: { token_id: id } } })),
    onSuccess: (revoked) => {
      for (const key of [apiTokensKey, orgApiTokensKey]) {
        qc.setQueryData<ApiToken[]>(key, (old) => old?.map((t) => (t.id === revoked.id ? revoked : t)));
      }
      void qc.invalidateQueries({ queryKey: apiTokensKey }); // the org's list too (its key starts the same)
    },
  });
}

export const orgApiTokensKey = ['api-tokens', 'org'] as const;

/** An admin's view: their org's users' tokens (a platform admin's: every org's). */
export function useOrgApiTokens() {
  return useQuery({
    queryKey: orgApiTokensKey,
    queryFn: (): Promise<ApiToken[]> => unwrap(api.GET('/api/v1/admin/tokens')),
  });
}

// --- second factor (TOTP) ------------------------------------------------------

export const mfaKeys = {
  mine: ['mfa'] as const,
  org: (orgId: string) => ['org-mfa', orgId] as const,
};

export function useMyMfa() {
  return useQuery({ queryKey: mfaKeys.mine, queryFn: () => unwrap(api.GET('/api/v1/auth/mfa')) });
}

/** An admin removes a user's factor (a lost phone); their logins stay. */
export function useResetMfa() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: string): Promise<unknown> => unwrap(api.DELETE('/api/v1/users/{user_id}/mfa', { params: { path: { user_id: id } } })),
    onSuccess: () => void qc.invalidateQueries({ queryKey: keys.users }),
  });
}

export function useOrgMfa(orgId: string | undefined) {
  return useQuery({
    queryKey: mfaKeys.org(orgId ?? ''),
    queryFn: () => unwrap(api.GET('/api/v1/orgs/{org_id}/mfa', { params: { path: { org_id: orgId ?? '' } } })),
    enabled: Boolean(orgId),
  });
}

export function useSetOrgMfa() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: ({ orgId, required }: { orgId: string; required: boolean }) =>
      unwrap(api.PUT('/api/v1/orgs/{org_id}/mfa', { params: { path: { org_id: orgId } }, body: { required } })),
    onSuccess: (policy) => qc.setQueryData(mfaKeys.org(policy.org_id), policy),
  });
}
