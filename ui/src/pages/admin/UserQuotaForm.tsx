import { Alert, Button, Group, NumberInput, Stack, Text } from '@mantine/core';
import { useForm } from '@mantine/form';
import { notifications } from '@mantine/notifications';
import { useState } from 'react';
import { errorMessage } from '../../api/client';
import { useSetUserQuota, useUserQuota, type Quota } from '../../api/quotas';
import type { User } from '../../api/types';

type Value = number | string; // NumberInput's: '' when empty
interface Values {
  sessions: Value;
  cpu: Value; // cores, shown as the templates' limits are
  memory: Value; // MiB
}

const orNull = (v: Value, scale = 1): number | null => (v === '' ? null : Math.round(Number(v) * scale));

function initial(quota: Quota): Values {
  const own = quota.user.own;
  return {
    sessions: own.sessions ?? '',
    cpu: own.cpu_millicores === null || own.cpu_millicores === undefined ? '' : own.cpu_millicores / 1000,
    memory: own.memory_mb ?? '',
  };
}

function Form({ user, quota, onDone }: { user: User; quota: Quota; onDone: () => void }) {
  const save = useSetUserQuota(user.id);
  const [serverError, setServerError] = useState<string | null>(null);
  const form = useForm<Values>({ initialValues: initial(quota) });
  return (
    <form
      noValidate
      onSubmit={form.onSubmit((values) => {
        setServerError(null);
        save.mutate(
          { sessions: orNull(values.sessions), cpu_millicores: orNull(values.cpu, 1000), memory_mb: orNull(values.memory) },
          {
            onSuccess: () => {
              notifications.show({ color: 'green', title: 'Quota saved', message: user.username });
              onDone();
            },
            onError: (err) => setServerError(errorMessage(err)),
          },
        );
      })}
    >
      <Stack>
        {serverError && (
          <Alert color="red" role="alert" title="Could not save the quota">
            {serverError}
          </Alert>
        )}
        <Text size="sm" c="dimmed">
          In use now: {quota.user.usage.sessions} session(s), {quota.user.usage.cpu_millicores / 1000} CPU, {quota.user.usage.memory_mb}{' '}
          MiB. Empty: the installation&apos;s default applies. Lowering a limit ends no session; new ones are refused until usage is under
          it.
        </Text>
        <NumberInput label="Sessions" min={0} allowDecimal={false} placeholder="default" {...form.getInputProps('sessions')} />
        <NumberInput label="CPU (cores)" min={0} decimalScale={3} placeholder="default" {...form.getInputProps('cpu')} />
        <NumberInput label="Memory (MiB)" min={0} allowDecimal={false} placeholder="default" {...form.getInputProps('memory')} />
        <Group justify="flex-end">
          <Button variant="default" onClick={onDone}>
            Cancel
          </Button>
          <Button type="submit" loading={save.isPending}>
            Save quota
          </Button>
        </Group>
      </Stack>
    </form>
  );
}

/** An org admin's edit of one user's own limits (sessions, CPU, memory), with their usage. */
export function UserQuotaForm({ user, onDone }: { user: User; onDone: () => void }) {
  const quota = useUserQuota(user.id);
  if (quota.isError) {
    return (
      <Alert color="red" role="alert" title="Could not load the quota">
        {errorMessage(quota.error)}
      </Alert>
    );
  }
  if (!quota.data) return <Text size="sm">Loading…</Text>;
  return <Form user={user} quota={quota.data} onDone={onDone} />;
}
