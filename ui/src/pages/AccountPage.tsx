import { Alert, Button, Paper, PasswordInput, Stack, Text, Title } from '@mantine/core';
import { IconAlertTriangle, IconCheck } from '@tabler/icons-react';
import { useState, type FormEvent } from 'react';
import { api, ApiError, errorMessage, unwrap } from '../api/client';
import { useMe } from '../api/queries';
import { ApiTokensSection } from './ApiTokensSection';
import { MfaSettings } from './MfaSettings';

const MIN_LENGTH = 8;

/** Your account: change your own password (your other logins end; this one stays); your second factor; your API tokens. */
export function AccountPage() {
  const me = useMe();
  const [current, setCurrent] = useState('');
  const [next, setNext] = useState('');
  const [repeat, setRepeat] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState(false);
  const [busy, setBusy] = useState(false);

  const problem = (): string | null => {
    if (!current || !next) return 'Enter your current and your new password';
    if (next.length < MIN_LENGTH) return `The new password needs at least ${MIN_LENGTH} characters`;
    if (next !== repeat) return 'The new passwords do not match';
    return null;
  };

  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    if (busy) return;
    const invalid = problem();
    setDone(false);
    setError(invalid);
    if (invalid) return;
    setBusy(true);
    try {
      await unwrap(api.POST('/api/v1/auth/password', { body: { current_password: current, new_password: next } }));
      setCurrent('');
      setNext('');
      setRepeat('');
      setDone(true);
    } catch (err) {
      setError(err instanceof ApiError && err.status === 429 ? `Too many attempts: ${err.message}` : errorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Stack>
      <Title order={2}>Account</Title>
      <Text c="dimmed" size="sm">
        Signed in as {me.data?.username}
      </Text>
      <Paper withBorder p="lg" radius="md" maw={420}>
        <form onSubmit={(e) => void onSubmit(e)} noValidate aria-labelledby="password-title">
          <Stack>
            <Title order={3} size="h4" id="password-title">
              Change password
            </Title>
            <Text size="sm" c="dimmed">
              Your other logins (other browsers and devices) end and their open desktops disconnect; this one stays signed in.
            </Text>
            <PasswordInput
              label="Current password"
              autoComplete="current-password"
              value={current}
              onChange={(e) => setCurrent(e.currentTarget.value)}
            />
            <PasswordInput label="New password" autoComplete="new-password" value={next} onChange={(e) => setNext(e.currentTarget.value)} />
            <PasswordInput
              label="Repeat the new password"
              autoComplete="new-password"
              value={repeat}
              onChange={(e) => setRepeat(e.currentTarget.value)}
            />
            {error && (
              <Alert color="red" icon={<IconAlertTriangle size={16} />} role="alert">
                {error}
              </Alert>
            )}
            {done && (
              <Alert color="green" icon={<IconCheck size={16} />} role="status">
                Password changed. Your other logins have ended.
              </Alert>
            )}
            <Button type="submit" loading={busy}>
              Change password
            </Button>
          </Stack>
        </form>
      </Paper>
      <MfaSettings />
      <ApiTokensSection />
    </Stack>
  );
}
