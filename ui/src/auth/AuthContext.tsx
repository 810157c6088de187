import { useQueryClient } from '@tanstack/react-query';
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';
import { api, apiErrorFrom, clearToken, getToken, setToken, setUnauthorizedHandler, unwrap } from '../api/client';
import type { MfaChallenge } from '../api/types';

/** Signed in, or the password was right and a second factor is needed (docs/identity.md). */
export type LoginOutcome = { kind: 'done' } | ({ kind: 'mfa' } & MfaChallenge);

/** Where logging out sends the browser to end its identity provider's session too (OIDC). */
const LOGOUT_URL_KEY = 'streamspace_logout_url';

interface AuthValue {
  token: string | null;
  login: (username: string, password: string) => Promise<LoginOutcome>;
  /** Keep a login token obtained another way (the second step of a login). */
  adopt: (token: string) => void;
  /** Complete a single sign-on: the callback left a one-time handoff in a cookie. */
  redeemSso: () => Promise<void>;
  logout: () => Promise<void>;
  /** Drop the token (expired or refused) without calling the server. */
  expire: () => void;
}

const AuthContext = createContext<AuthValue | null>(null);

export function AuthProvider({ children }: { children: ReactNode }) {
  const qc = useQueryClient();
  const [token, setTokenState] = useState<string | null>(() => getToken());

  const expire = useCallback(() => {
    clearToken();
    setTokenState(null);
    qc.clear();
  }, [qc]);

  useEffect(() => {
    setUnauthorizedHandler(expire);
    return () => setUnauthorizedHandler(null);
  }, [expire]);

  // Another tab logging in or out.
  useEffect(() => {
    const onStorage = () => setTokenState(getToken());
    window.addEventListener('storage', onStorage);
    return () => window.removeEventListener('storage', onStorage);
  }, []);

  const adopt = useCallback(
    (access: string) => {
      qc.clear();
      localStorage.removeItem(LOGOUT_URL_KEY); // a single sign-on sets its own after this
      setToken(access);
      setTokenState(access);
    },
    [qc],
  );

  const redeemSso = useCallback(async () => {
    const res = await unwrap(api.POST('/api/v1/auth/oidc/redeem'));
    adopt(res.access_token);
    if (res.logout_url) localStorage.setItem(LOGOUT_URL_KEY, res.logout_url);
  }, [adopt]);

  const login = useCallback(
    async (username: string, password: string): Promise<LoginOutcome> => {
      const { data, error, response } = await api.POST('/api/v1/auth/login', { body: { username, password } });
      if (response.status === 401 && error && 'mfa' in error) return { kind: 'mfa', ...error.mfa };
      if (!response.ok || !data) throw apiErrorFrom(response, error);
      adopt(data.access_token);
      return { kind: 'done' };
    },
    [adopt],
  );

  const logout = useCallback(async () => {
    try {
      await api.POST('/api/v1/auth/logout');
    } catch {
      /* the token is dropped locally either way */
    }
    const providerLogout = localStorage.getItem(LOGOUT_URL_KEY);
    localStorage.removeItem(LOGOUT_URL_KEY);
    expire();
    // Signed in through the identity provider: end its session too (RP-initiated logout).
    if (providerLogout) window.location.assign(providerLogout);
  }, [expire]);

  const value = useMemo(() => ({ token, login, adopt, redeemSso, logout, expire }), [token, login, adopt, redeemSso, logout, expire]);
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthValue {
  const value = useContext(AuthContext);
  if (!value) throw new Error('useAuth outside AuthProvider');
  return value;
}
