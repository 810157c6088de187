import { Alert, Badge, Button, Group, Modal, NativeSelect, PasswordInput, Stack, Table, Text, TextInput, Title } from '@mantine/core';
import { useForm } from '@mantine/form';
import { notifications } from '@mantine/notifications';
import { IconPlus } from '@tabler/icons-react';
import { useState } from 'react';
import { errorMessage } from '../../api/client';
import { useClearLockout, useCreateUser, useMe, useRemoveUser, useUpdateUser, useUsers } from '../../api/queries';
import { OrgMfaSwitch, ResetMfaDialog } from './MfaAdmin';
import type { Role, User } from '../../api/types';
import { DataTable } from '../../components/DataTable';
import { EmptyState, QueryContent } from '../../components/QueryState';
import { UserQuotaForm } from './UserQuotaForm';

// A Record over the API's roles: one the API gains fails the type check until it is offered here.
const ROLE_LABELS: Record<Role, string> = { user: 'user', admin: 'admin' };
const ROLES = Object.entries(ROLE_LABELS).map(([value, label]) => ({ value, label }));
const isRole = (value: string): value is Role => Object.hasOwn(ROLE_LABELS, value);

function NewUserForm({ onDone }: { onDone: () => void }) {
  const create = useCreateUser();
  const [serverError, setServerError] = useState<string | null>(null);
  const form = useForm({
    initialValues: { username: '', password: '', role: 'user' as Role },
    validate: {
      username: (v: string) => (v.trim().length < 2 ? 'At least 2 characters' : v.length > 63 ? 'At most 63 characters' : null),
      password: (v: string) => (v.length < 8 ? 'At least 8 characters' : v.length > 1024 ? 'At most 1024 characters' : null),
    },
  });
  return (
    <form
      noValidate
      onSubmit={form.onSubmit((values) => {
        setServerError(null);
        create.mutate(
          { ...values, username: values.username.trim(), platform_admin: false },
          {
            onSuccess: (user) => {
              notifications.show({ color: 'green', title: 'User created', message: user.username });
              onDone();
            },
            onError: (err) => setServerError(errorMessage(err)),
          },
        );
      })}
    >
      <Stack>
        {serverError && (
          <Alert color="red" role="alert" title="Could not create the user">
            {serverError}
          </Alert>
        )}
        <TextInput label="Username" autoComplete="off" {...form.getInputProps('username')} />
        <PasswordInput label="Password" autoComplete="new-password" {...form.getInputProps('password')} />
        <NativeSelect label="Role" data={ROLES} {...form.getInputProps('role')} />
        <Group justify="flex-end">
          <Button variant="default" onClick={onDone}>
            Cancel
          </Button>
          <Button type="submit" loading={create.isPending}>
            Create user
          </Button>
        </Group>
      </Stack>
    </form>
  );
}

const USER_COLUMNS = ['Username', 'Role', 'Status', 'Actions'];

/** Asks before removing: a removed user's logins and sessions end, and the name stays taken. */
function RemoveUserDialog({ user, onDone }: { user: User; onDone: () => void }) {
  const remove = useRemoveUser();
  const [serverError, setServerError] = useState<string | null>(null);
  const confirm = () =>
    remove.mutate(user.id, {
      onSuccess: (removed) => {
        const kept = removed.sessions_not_terminated ?? [];
        notifications.show({
          color: kept.length ? 'yellow' : 'green',
          title: 'User removed',
          message: kept.length
            ? `${user.username}: ${kept.length} session(s) could not be ended now (agent unreachable); end them from Sessions`
            : user.username,
        });
        onDone();
      },
      onError: (err) => setServerError(errorMessage(err)),
    });
  return (
    <Stack>
      {serverError && (
        <Alert color="red" role="alert" title="Could not remove the user">
          {serverError}
        </Alert>
      )}
      <Text size="sm">
        {user.username} is signed out everywhere and their sessions are ended. Their name stays taken, so nobody new is given their files.
      </Text>
      <Group justify="flex-end">
        <Button variant="default" onClick={onDone}>
          Cancel
        </Button>
        <Button color="red" loading={remove.isPending} onClick={confirm}>
          Remove {user.username}
        </Button>
      </Group>
    </Stack>
  );
}

export function UsersPage() {
  const users = useUsers();
  const me = useMe();
  const update = useUpdateUser();
  const unlock = useClearLockout();
  const [creating, setCreating] = useState(false);
  const [removing, setRemoving] = useState<User | null>(null);
  const [limiting, setLimiting] = useState<User | null>(null);
  const [resetting, setResetting] = useState<User | null>(null);

  const clearLockout = (u: User) =>
    unlock.mutate(u.id, {
      onSuccess: () => notifications.show({ color: 'green', title: 'Lockout cleared', message: `${u.username} can sign in again` }),
      onError: (err) => notifications.show({ color: 'red', title: `Could not clear ${u.username}'s lockout`, message: errorMessage(err) }),
    });

  const change = (u: User, body: { disabled?: boolean; role?: Role }, what: string) =>
    update.mutate(
      { id: u.id, body },
      {
        onSuccess: () => notifications.show({ color: 'green', title: what, message: u.username }),
        onError: (err) => notifications.show({ color: 'red', title: `Could not update ${u.username}`, message: errorMessage(err) }),
      },
    );

  const list = [...(users.data ?? [])].sort((a, b) => a.username.localeCompare(b.username));

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>Users</Title>
        <OrgMfaSwitch orgId={me.data?.org_id} />
        <Button leftSection={<IconPlus size={16} />} onClick={() => setCreating(true)}>
          New user
        </Button>
      </Group>
      <QueryContent query={users} errorTitle="Could not load users" isEmpty={list.length === 0} empty={<EmptyState title="No users" />}>
        <DataTable minWidth={600} columns={USER_COLUMNS}>
          {list.map((u) => {
            const self = u.id === me.data?.id;
            return (
              <Table.Tr key={u.id} data-username={u.username}>
                <Table.Td>
                  <Text size="sm" fw={500}>
                    {u.username}
                    {self && (
                      <Text span size="xs" c="dimmed">
                        {' '}
                        (you)
                      </Text>
                    )}
                  </Text>
                </Table.Td>
                <Table.Td>
                  <NativeSelect
                    aria-label={`Role for ${u.username}`}
                    data={ROLES}
                    value={u.role}
                    size="xs"
                    w={110}
                    disabled={update.isPending && update.variables?.id === u.id}
                    onChange={(e) => {
                      const role = e.currentTarget.value;
                      if (isRole(role)) change(u, { role }, 'Role changed');
                    }}
                  />
                </Table.Td>
                <Table.Td>
                  <Badge color={u.disabled ? 'red' : 'green'} variant="light">
                    {u.disabled ? 'disabled' : 'active'}
                  </Badge>
                  {u.platform_admin && (
                    <Badge color="grape" variant="light" ml="xs" title="Also runs agents, replicas and orgs">
                      platform
                    </Badge>
                  )}
                  {u.mfa_enabled && (
                    <Badge color="blue" variant="light" ml="xs" title="Signs in with a code from an authenticator app">
                      MFA
                    </Badge>
                  )}
                </Table.Td>
                <Table.Td>
                  <Button
                    size="xs"
                    variant={u.disabled ? 'light' : 'default'}
                    color={u.disabled ? 'green' : undefined}
                    loading={update.isPending && update.variables?.id === u.id && update.variables.body.disabled !== undefined}
                    onClick={() => change(u, { disabled: !u.disabled }, u.disabled ? 'User enabled' : 'User disabled')}
                    aria-label={`${u.disabled ? 'Enable' : 'Disable'} ${u.username}`}
                  >
                    {u.disabled ? 'Enable' : 'Disable'}
                  </Button>
                  <Button
                    size="xs"
                    variant="default"
                    ml="xs"
                    loading={unlock.isPending && unlock.variables === u.id}
                    onClick={() => clearLockout(u)}
                    aria-label={`Clear the login lockout of ${u.username}`}
                    title="Too many failed logins lock a user out for a while; this lets them sign in again now"
                  >
                    Clear lockout
                  </Button>
                  <Button size="xs" variant="default" ml="xs" onClick={() => setLimiting(u)} aria-label={`Quota of ${u.username}`}>
                    Quota
                  </Button>
                  {u.mfa_enabled && (
                    <Button
                      size="xs"
                      variant="default"
                      ml="xs"
                      onClick={() => setResetting(u)}
                      aria-label={`Reset MFA of ${u.username}`}
                      title="Remove their second factor (a lost phone); they can set up a new one"
                    >
                      Reset MFA
                    </Button>
                  )}
                  {!self && (
                    <Button
                      size="xs"
                      variant="subtle"
                      color="red"
                      ml="xs"
                      onClick={() => setRemoving(u)}
                      aria-label={`Remove ${u.username}`}
                    >
                      Remove
                    </Button>
                  )}
                </Table.Td>
              </Table.Tr>
            );
          })}
        </DataTable>
      </QueryContent>
      <Modal opened={creating} onClose={() => setCreating(false)} title="New user">
        {creating && <NewUserForm onDone={() => setCreating(false)} />}
      </Modal>
      <Modal opened={limiting !== null} onClose={() => setLimiting(null)} title={`Quota of ${limiting?.username ?? ''}`}>
        {limiting && <UserQuotaForm user={limiting} onDone={() => setLimiting(null)} />}
      </Modal>
      <Modal opened={resetting !== null} onClose={() => setResetting(null)} title="Reset two-factor authentication">
        {resetting && <ResetMfaDialog user={resetting} onDone={() => setResetting(null)} />}
      </Modal>
      <Modal opened={removing !== null} onClose={() => setRemoving(null)} title="Remove user">
        {removing && <RemoveUserDialog user={removing} onDone={() => setRemoving(null)} />}
      </Modal>
    </Stack>
  );
}
