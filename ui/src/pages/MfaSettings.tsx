import { Alert, Badge, Button, Group, Paper, PasswordInput, Stack, Text, TextInput, Title } from '@mantine/core';
import { useQueryClient } from '@tanstack/react-query';
import { IconAlertTriangle } from '@tabler/icons-react';
import { useState, type FormEvent } from 'react';
import { api, ApiError, errorMessage, unwrap } from '../api/client';
import { mfaKeys, useMyMfa } from '../api/queries';
import type { MfaEnrolment } from '../api/types';
import { EnrolmentQr, RecoveryCodes } from '../components/MfaParts';

/** 6 digits is a code; anything else is the password (which has at least 8 characters). */
function proofBody(proof: string): { code: string } | { password: string } {
  return /^\d{6}$/.test(proof.trim()) ? { code: proof.trim() } : { password: proof };
}

function describe(err: unknown): string {
  if (err instanceof ApiError && err.status === 429) return `Too many attempts: ${err.message}`;
  if (err instanceof ApiError && err.code === 'invalid_mfa_code') return 'That code does not match: try the next one the app shows';
  return errorMessage(err);
}

/** Your second factor: set it up (QR code, first code, recovery codes shown once), turn it off,
 * or replace the recovery codes; the last two need a current code or your password. */
export function MfaSettings() {
  const status = useMyMfa();
  const qc = useQueryClient();
  const [enrolment, setEnrolment] = useState<MfaEnrolment | null>(null);
  const [codes, setCodes] = useState<string[] | null>(null);
  const [value, setValue] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState<string | null>(null);

  const run = async (what: string, call: () => Promise<void>) => {
    if (busy) return;
    setBusy(what);
    setError(null);
    try {
      await call();
      setValue('');
    } catch (err) {
      setError(describe(err));
    } finally {
      setBusy(null);
      void qc.invalidateQueries({ queryKey: mfaKeys.mine });
    }
  };

  const start = () => run('start', async () => setEnrolment(await unwrap(api.POST('/api/v1/auth/mfa/enrolment'))));
  const confirm = (e: FormEvent) => {
    e.preventDefault();
    void run('confirm', async () => {
      const res = await unwrap(api.POST('/api/v1/auth/mfa/enrolment/confirm', { body: { code: value.trim() } }));
      setEnrolment(null);
      setCodes(res.recovery_codes);
    });
  };
  const regenerate = () =>
    run('regenerate', async () => {
      const res = await unwrap(api.POST('/api/v1/auth/mfa/recovery-codes', { body: proofBody(value) }));
      setCodes(res.recovery_codes);
    });
  const disable = () =>
    run('disable', async () => {
      await unwrap(api.POST('/api/v1/auth/mfa/disable', { body: proofBody(value) }));
    });

  const mfa = status.data;
  const alert = error && (
    <Alert color="red" icon={<IconAlertTriangle size={16} />} role="alert">
      {error}
    </Alert>
  );

  let body;
  if (codes) {
    body = <RecoveryCodes codes={codes} onDone={() => setCodes(null)} />;
  } else if (!mfa) {
    body = <Text size="sm">{status.isError ? 'Could not load your two-factor settings.' : 'Loading…'}</Text>;
  } else if (!mfa.available) {
    body = <Text size="sm">Your sign-in provider handles two-factor authentication for your account.</Text>;
  } else if (enrolment) {
    body = (
      <form onSubmit={confirm} noValidate>
        <Stack>
          <Text size="sm">Scan this code with an authenticator app, then enter the 6-digit code it shows.</Text>
          <EnrolmentQr qr={enrolment.qr_svg} secret={enrolment.secret} />
          {alert}
          <TextInput
            label="Code from the app"
            autoComplete="one-time-code"
            inputMode="numeric"
            value={value}
            onChange={(e) => setValue(e.currentTarget.value)}
          />
          <Group justify="flex-end">
            <Button variant="default" onClick={() => setEnrolment(null)}>
              Cancel
            </Button>
            <Button type="submit" loading={busy === 'confirm'}>
              Turn on
            </Button>
          </Group>
        </Stack>
      </form>
    );
  } else if (!mfa.enabled) {
    body = (
      <Stack>
        <Text size="sm">
          {mfa.required
            ? 'Your organisation requires a second factor: set it up now, or you will be asked to at your next sign-in.'
            : 'Sign in with a code from an authenticator app on your phone as well as your password.'}
        </Text>
        {alert}
        <Button onClick={() => void start()} loading={busy === 'start'}>
          Set up two-factor authentication
        </Button>
      </Stack>
    );
  } else {
    body = (
      <Stack>
        <Text size="sm">
          {mfa.recovery_codes_left} recovery code{mfa.recovery_codes_left === 1 ? '' : 's'} left.
          {mfa.required && ' Your organisation requires a second factor: if you turn it off you set up a new one at your next sign-in.'}
        </Text>
        {alert}
        <PasswordInput
          label="Current code or password"
          description="Needed to turn it off or to get new recovery codes"
          autoComplete="current-password"
          value={value}
          onChange={(e) => setValue(e.currentTarget.value)}
        />
        <Group justify="flex-end">
          <Button variant="default" disabled={!value} loading={busy === 'regenerate'} onClick={() => void regenerate()}>
            New recovery codes
          </Button>
          <Button color="red" variant="light" disabled={!value} loading={busy === 'disable'} onClick={() => void disable()}>
            Turn off
          </Button>
        </Group>
      </Stack>
    );
  }

  return (
    <Paper withBorder p="lg" radius="md" aria-labelledby="mfa-title" component="section">
      <Stack>
        <Group justify="space-between">
          <Title order={3} size="h4" id="mfa-title">
            Two-factor authentication
          </Title>
          {mfa?.available && (
            <Badge color={mfa.enabled ? 'green' : 'gray'} variant="light">
              {mfa.enabled ? 'on' : 'off'}
            </Badge>
          )}
        </Group>
        {body}
      </Stack>
    </Paper>
  );
}
