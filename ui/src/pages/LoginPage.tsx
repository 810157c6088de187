import { Alert, Button, Center, Divider, Paper, PasswordInput, Stack, Text, TextInput, Title } from '@mantine/core';
import { IconAlertTriangle } from '@tabler/icons-react';
import { useQuery } from '@tanstack/react-query';
import { useEffect, useState, type FormEvent } from 'react';
import { Navigate, useLocation, useNavigate, useSearchParams } from 'react-router';
import { api, ApiError, errorMessage, unwrap } from '../api/client';
import type { MfaChallenge } from '../api/types';
import { useAuth } from '../auth/AuthContext';
import { MfaLoginStep } from './MfaLoginStep';

/** Which sign-ins the server offers; while unknown (or unreadable), the password form alone. */
function useProviders() {
  const query = useQuery({
    queryKey: ['auth-providers'],
    queryFn: () => unwrap(api.GET('/api/v1/auth/providers')),
    retry: false,
    staleTime: Infinity,
  });
  return query.data ?? { password: true, oidc: null };
}

function returnPath(state: unknown): string {
  const from = (state as { from?: unknown } | null)?.from;
  return typeof from === 'string' && from.startsWith('/') && !from.startsWith('/login') ? from : '/';
}

export function LoginPage() {
  const { token, login, adopt } = useAuth();
  const location = useLocation();
  const navigate = useNavigate();
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [params] = useSearchParams();
  const providers = useProviders();
  // A single sign-on that failed comes back here with the reason.
  const [error, setError] = useState<string | null>(() => params.get('sso_error'));
  const [busy, setBusy] = useState(false);
  const [retryUntil, setRetryUntil] = useState<number | null>(null);
  const [now, setNow] = useState(() => Date.now());
  const [mfa, setMfa] = useState<MfaChallenge | null>(null);

  const waitSeconds = retryUntil ? Math.max(0, Math.ceil((retryUntil - now) / 1000)) : 0;

  useEffect(() => {
    if (!retryUntil) return;
    const id = setInterval(() => {
      const t = Date.now();
      setNow(t);
      if (t >= retryUntil) {
        setRetryUntil(null);
        setError(null);
      }
    }, 250);
    return () => clearInterval(id);
  }, [retryUntil]);

  if (token) return <Navigate to={returnPath(location.state)} replace />;

  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    if (waitSeconds > 0 || busy) return;
    if (!username.trim() || !password) {
      setError('Enter your username and password');
      return;
    }
    setError(null);
    setBusy(true);
    try {
      const outcome = await login(username.trim(), password);
      if (outcome.kind === 'mfa') {
        setMfa(outcome);
        return;
      }
      void navigate(returnPath(location.state), { replace: true });
    } catch (err) {
      if (err instanceof ApiError && err.status === 429) {
        const seconds = err.retryAfter ?? 30;
        const t = Date.now();
        setNow(t);
        setRetryUntil(t + seconds * 1000);
        setError(null);
      } else {
        setError(errorMessage(err));
      }
    } finally {
      setBusy(false);
    }
  };

  return (
    <Center mih="100vh" p="md">
      <Paper withBorder shadow="sm" p="xl" radius="md" w={380} maw="100%">
        {mfa ? (
          <MfaLoginStep
            challenge={mfa}
            onToken={adopt}
            onRestart={() => {
              setMfa(null);
              setPassword('');
            }}
          />
        ) : (
          <form onSubmit={(e) => void onSubmit(e)} noValidate aria-labelledby="login-title">
            <Stack>
              <div>
                <Title order={1} size="h2" id="login-title">
                  StreamSpace
                </Title>
                <Text c="dimmed" size="sm">
                  Sign in to launch your apps
                </Text>
              </div>
              {waitSeconds > 0 ? (
                <Alert color="orange" icon={<IconAlertTriangle size={18} />} role="alert">
                  Too many attempts, try again in {waitSeconds} s
                </Alert>
              ) : error ? (
                <Alert color="red" icon={<IconAlertTriangle size={18} />} role="alert">
                  {error}
                </Alert>
              ) : null}
              {providers.oidc ? (
                <Button
                  component="a"
                  variant={providers.password ? 'default' : 'filled'}
                  href={`${providers.oidc.login_url}?next=${encodeURIComponent(returnPath(location.state))}`}
                >
                  Sign in with {providers.oidc.name}
                </Button>
              ) : null}
              {providers.oidc && providers.password ? <Divider label="or" labelPosition="center" /> : null}
              {providers.password ? (
                <>
                  <TextInput
                    label="Username"
                    autoComplete="username"
                    value={username}
                    onChange={(e) => setUsername(e.currentTarget.value)}
                    data-autofocus
                    // The page is nothing but this form: starting in its first field saves everyone a
                    // Tab, and the field's label is announced, so no context is skipped.
                    // eslint-disable-next-line jsx-a11y/no-autofocus
                    autoFocus
                  />
                  <PasswordInput
                    label="Password"
                    autoComplete="current-password"
                    value={password}
                    onChange={(e) => setPassword(e.currentTarget.value)}
                  />
                  <Button type="submit" loading={busy} disabled={waitSeconds > 0}>
                    Sign in
                  </Button>
                </>
              ) : null}
            </Stack>
          </form>
        )}
      </Paper>
    </Center>
  );
}
