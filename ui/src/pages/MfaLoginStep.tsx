import { Alert, Anchor, Button, Loader, Stack, Text, TextInput, Title } from '@mantine/core';
import { IconAlertTriangle } from '@tabler/icons-react';
import { useEffect, useState, type FormEvent } from 'react';
import { api, ApiError, errorMessage, unwrap } from '../api/client';
import type { MfaChallenge, MfaEnrolment } from '../api/types';
import { EnrolmentQr, RecoveryCodes } from '../components/MfaParts';

// the challenge is over: a new password step is the only way on
const RESTART = new Set(['mfa_challenge_spent', 'mfa_challenge_stale', 'token_expired', 'invalid_token', 'invalid_credentials']);

interface Props {
  challenge: MfaChallenge;
  /** The login token, once the second step succeeded (and any recovery codes were seen). */
  onToken: (token: string) => void;
  onRestart: () => void;
}

/** A login's second step: a code from the app or a recovery code; or, when the org requires a
 * factor the user does not have yet, enrolling one first (QR code, first code, recovery codes). */
export function MfaLoginStep({ challenge, onToken, onRestart }: Props) {
  const [useRecovery, setUseRecovery] = useState(false);
  const [value, setValue] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [restart, setRestart] = useState(false);
  const [busy, setBusy] = useState(false);
  const [enrolment, setEnrolment] = useState<MfaEnrolment | null>(null);
  const [done, setDone] = useState<{ token: string; codes: string[] } | null>(null);

  useEffect(() => {
    if (!challenge.enrol) return;
    let live = true;
    unwrap(api.POST('/api/v1/auth/login/mfa/enrolment', { body: { challenge: challenge.challenge } }))
      .then((e) => live && setEnrolment(e))
      .catch((err: unknown) => {
        if (!live) return;
        setError(errorMessage(err));
        setRestart(true);
      });
    return () => {
      live = false;
    };
  }, [challenge]);

  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    if (busy || restart) return;
    const proof = value.trim();
    if (!proof) {
      setError(useRecovery ? 'Enter one of your recovery codes' : 'Enter the 6-digit code from your app');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const body = useRecovery ? { challenge: challenge.challenge, recovery_code: proof } : { challenge: challenge.challenge, code: proof };
      const res = await unwrap(api.POST('/api/v1/auth/login/mfa', { body }));
      if (res.recovery_codes?.length) setDone({ token: res.access_token, codes: res.recovery_codes });
      else onToken(res.access_token);
    } catch (err) {
      setValue('');
      if (err instanceof ApiError && err.status === 429) setError(`Too many attempts, try again in ${err.retryAfter ?? 30} s`);
      else
        setError(err instanceof ApiError && err.code === 'invalid_mfa_code' ? 'That code is wrong or was already used' : errorMessage(err));
      if (err instanceof ApiError && RESTART.has(err.code)) setRestart(true);
    } finally {
      setBusy(false);
    }
  };

  if (done) return <RecoveryCodes codes={done.codes} onDone={() => onToken(done.token)} doneLabel="Continue" />;

  return (
    <form onSubmit={(e) => void onSubmit(e)} noValidate aria-labelledby="mfa-title">
      <Stack>
        <Title order={1} size="h3" id="mfa-title">
          {challenge.enrol ? 'Set up two-factor authentication' : 'Two-factor authentication'}
        </Title>
        {challenge.enrol ? (
          <>
            <Text size="sm" c="dimmed">
              Your organisation requires a second factor. Scan this code with an authenticator app, then enter the 6-digit code it shows.
            </Text>
            {enrolment ? <EnrolmentQr qr={enrolment.qr_svg} secret={enrolment.secret} /> : !restart && <Loader size="sm" mx="auto" />}
          </>
        ) : (
          <Text size="sm" c="dimmed">
            {useRecovery ? 'Enter one of the recovery codes you saved.' : 'Enter the 6-digit code from your authenticator app.'}
          </Text>
        )}
        {error && (
          <Alert color="red" icon={<IconAlertTriangle size={18} />} role="alert">
            {error}
          </Alert>
        )}
        <TextInput
          label={useRecovery ? 'Recovery code' : 'Authentication code'}
          autoComplete="one-time-code"
          inputMode={useRecovery ? 'text' : 'numeric'}
          value={value}
          onChange={(e) => setValue(e.currentTarget.value)}
          disabled={restart}
          // The second step is this one field: start in it.
          // eslint-disable-next-line jsx-a11y/no-autofocus
          autoFocus
        />
        {restart ? (
          <Button onClick={onRestart}>Sign in again</Button>
        ) : (
          <Button type="submit" loading={busy}>
            Verify
          </Button>
        )}
        {!challenge.enrol && !restart && (
          <Anchor
            component="button"
            type="button"
            size="sm"
            onClick={() => {
              setUseRecovery(!useRecovery);
              setValue('');
              setError(null);
            }}
          >
            {useRecovery ? 'Use a code from the app' : 'Use a recovery code'}
          </Anchor>
        )}
      </Stack>
    </form>
  );
}
