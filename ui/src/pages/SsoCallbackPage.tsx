import { Alert, Anchor, Center, Loader, Paper, Stack } from '@mantine/core';
import { IconAlertTriangle } from '@tabler/icons-react';
import { useEffect, useRef, useState } from 'react';
import { Link, useNavigate, useSearchParams } from 'react-router';
import { errorMessage } from '../api/client';
import { useAuth } from '../auth/AuthContext';

function safePath(value: string | null): string {
  return value && value.startsWith('/') && !value.startsWith('//') ? value : '/';
}

/** Where the identity provider's sign-in lands: redeem the one-time handoff, then go on. */
export function SsoCallbackPage() {
  const { redeemSso } = useAuth();
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const [error, setError] = useState<string | null>(null);
  const started = useRef(false);
  const next = safePath(params.get('next'));

  useEffect(() => {
    if (started.current) return; // the handoff is good once: not again in StrictMode's re-run
    started.current = true;
    redeemSso().then(
      () => void navigate(next, { replace: true }),
      (err: unknown) => setError(errorMessage(err)),
    );
  }, [redeemSso, navigate, next]);

  return (
    <Center mih="100vh" p="md">
      <Paper withBorder shadow="sm" p="xl" radius="md" w={380} maw="100%">
        {error ? (
          <Stack>
            <Alert color="red" icon={<IconAlertTriangle size={18} />} role="alert">
              {error}
            </Alert>
            <Anchor component={Link} to="/login">
              Back to sign in
            </Anchor>
          </Stack>
        ) : (
          <Center>
            <Loader aria-label="Signing in" />
          </Center>
        )}
      </Paper>
    </Center>
  );
}
