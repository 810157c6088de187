import { Alert, Button, Group, Stack, Switch, Text } from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { useState } from 'react';
import { errorMessage } from '../../api/client';
import { useOrgMfa, useResetMfa, useSetOrgMfa } from '../../api/queries';
import type { User } from '../../api/types';

/** Asks before removing a user's second factor; their logins stay (docs/identity.md). */
export function ResetMfaDialog({ user, onDone }: { user: User; onDone: () => void }) {
  const reset = useResetMfa();
  const [serverError, setServerError] = useState<string | null>(null);
  const confirm = () =>
    reset.mutate(user.id, {
      onSuccess: () => {
        notifications.show({
          color: 'green',
          title: 'MFA reset',
          message: `${user.username} signs in with their password alone until they set up a new factor`,
        });
        onDone();
      },
      onError: (err) => setServerError(errorMessage(err)),
    });
  return (
    <Stack>
      {serverError && (
        <Alert color="red" role="alert" title="Could not reset MFA">
          {serverError}
        </Alert>
      )}
      <Text size="sm">
        {user.username}&apos;s authenticator app and recovery codes stop working. Their open logins stay; if your organisation requires
        two-factor authentication they set up a new factor at their next sign-in. Do this only when you know it is them asking.
      </Text>
      <Group justify="flex-end">
        <Button variant="default" onClick={onDone}>
          Cancel
        </Button>
        <Button color="red" loading={reset.isPending} onClick={confirm}>
          Reset MFA
        </Button>
      </Group>
    </Stack>
  );
}

/** The org's "MFA required" flag, for its admins. */
export function OrgMfaSwitch({ orgId }: { orgId: string | undefined }) {
  const policy = useOrgMfa(orgId);
  const set = useSetOrgMfa();
  if (!orgId || !policy.data) return null;
  return (
    <Switch
      label="Require two-factor authentication"
      description="Users who sign in with a password here set it up at their next sign-in (LDAP and single sign-on users are not covered)"
      checked={policy.data.required}
      disabled={set.isPending}
      onChange={(e) =>
        set.mutate(
          { orgId, required: e.currentTarget.checked },
          {
            onSuccess: (p) =>
              notifications.show({
                color: 'green',
                title: p.required ? 'MFA required' : 'MFA no longer required',
                message: 'for everyone in your organisation',
              }),
            onError: (err) =>
              notifications.show({ color: 'red', title: 'Could not change the MFA requirement', message: errorMessage(err) }),
          },
        )
      }
    />
  );
}
