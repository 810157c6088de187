import { Alert, Badge, Button, Checkbox, Code, CopyButton, Group, Modal, Stack, Table, Text, TextInput, Title } from '@mantine/core';
import { useForm } from '@mantine/form';
import { notifications } from '@mantine/notifications';
import { IconPlus } from '@tabler/icons-react';
import { useState } from 'react';
import { errorMessage } from '../../api/client';
import { useMe } from '../../api/queries';
import {
  useCreateWebhook,
  useDeleteWebhook,
  useRedeliver,
  useSendTestEvent,
  useUpdateWebhook,
  useWebhookDeliveries,
  useWebhookEventTypes,
  useWebhooks,
  type Webhook,
  type WebhookCreated,
} from '../../api/webhooks';
import { DataTable } from '../../components/DataTable';
import { EmptyState, QueryContent } from '../../components/QueryState';
import { RelativeTime } from '../../components/RelativeTime';

// Agents are the platform's: only platform admins may subscribe to their events.
const PLATFORM_EVENTS = new Set(['agent.offline']);

function NewWebhookForm({ onCreated, onCancel }: { onCreated: (hook: WebhookCreated) => void; onCancel: () => void }) {
  const create = useCreateWebhook();
  const eventTypes = useWebhookEventTypes();
  const me = useMe();
  const [serverError, setServerError] = useState<string | null>(null);
  const form = useForm({
    initialValues: { url: 'https://', event_types: [] as string[] },
    validate: {
      url: (v: string) => (!v.startsWith('https://') || v.length < 9 ? 'An https:// URL' : null),
      event_types: (v: string[]) => (v.length === 0 ? 'Choose at least one event' : null),
    },
  });
  const offered = (eventTypes.data ?? []).filter((e) => me.data?.platform_admin === true || !PLATFORM_EVENTS.has(e));
  return (
    <form
      noValidate
      onSubmit={form.onSubmit((values) => {
        setServerError(null);
        create.mutate(values, { onSuccess: onCreated, onError: (err) => setServerError(errorMessage(err)) });
      })}
    >
      <Stack>
        {serverError && (
          <Alert color="red" role="alert" title="Could not register the webhook">
            {serverError}
          </Alert>
        )}
        <TextInput label="Endpoint URL" description="HTTPS only" autoComplete="off" {...form.getInputProps('url')} />
        <Checkbox.Group label="Events" {...form.getInputProps('event_types')}>
          <Stack gap={6} mt="xs">
            {offered.map((e) => (
              <Checkbox key={e} value={e} label={e} />
            ))}
          </Stack>
        </Checkbox.Group>
        <Group justify="flex-end">
          <Button variant="default" onClick={onCancel}>
            Cancel
          </Button>
          <Button type="submit" loading={create.isPending}>
            Register webhook
          </Button>
        </Group>
      </Stack>
    </form>
  );
}

/** The signing secret, shown once: the API never returns it again. */
function SecretOnce({ hook, onDone }: { hook: WebhookCreated; onDone: () => void }) {
  return (
    <Stack>
      <Text size="sm">
        Deliveries to {hook.url} are signed with this secret. Copy it now: it is not shown again (docs/identity.md explains how receivers
        verify the signature).
      </Text>
      <Code block data-testid="webhook-secret">
        {hook.secret}
      </Code>
      <Group justify="flex-end">
        <CopyButton value={hook.secret}>
          {({ copied, copy }) => (
            <Button variant="light" onClick={copy}>
              {copied ? 'Copied' : 'Copy secret'}
            </Button>
          )}
        </CopyButton>
        <Button onClick={onDone}>Done</Button>
      </Group>
    </Stack>
  );
}

const DELIVERY_COLUMNS = ['Event', 'State', 'Attempts', 'Last answer', 'Created', ''];
const STATE_COLORS: Record<string, string> = { pending: 'yellow', delivered: 'green', failed: 'red' };

function DeliveryLog({ hook }: { hook: Webhook }) {
  const deliveries = useWebhookDeliveries(hook.id);
  const redeliver = useRedeliver();
  const rows = deliveries.data ?? [];
  return (
    <QueryContent
      query={deliveries}
      errorTitle="Could not load the delivery log"
      isEmpty={rows.length === 0}
      empty={<EmptyState title="No deliveries yet" />}
    >
      <DataTable minWidth={700} columns={DELIVERY_COLUMNS}>
        {rows.map((d) => (
          <Table.Tr key={d.id} data-delivery={d.id}>
            <Table.Td>
              <Text size="sm">{d.event_type}</Text>
              <Text size="xs" c="dimmed" ff="monospace">
                {d.id}
              </Text>
            </Table.Td>
            <Table.Td>
              <Badge color={STATE_COLORS[d.state]} variant="light">
                {d.state}
              </Badge>
            </Table.Td>
            <Table.Td>{d.attempts}</Table.Td>
            <Table.Td>
              <Text size="sm">{d.last_status ?? '—'}</Text>
              {(d.last_error || d.last_response) && (
                <Text size="xs" c="dimmed" lineClamp={2} title={d.last_error || d.last_response}>
                  {d.last_error || d.last_response}
                </Text>
              )}
            </Table.Td>
            <Table.Td>
              <RelativeTime iso={d.created_at} />
            </Table.Td>
            <Table.Td>
              {d.state !== 'pending' && (
                <Button
                  size="xs"
                  variant="default"
                  loading={redeliver.isPending && redeliver.variables?.id === d.id}
                  onClick={() =>
                    redeliver.mutate(d, {
                      onError: (err) => notifications.show({ color: 'red', title: 'Could not redeliver', message: errorMessage(err) }),
                    })
                  }
                >
                  Redeliver
                </Button>
              )}
            </Table.Td>
          </Table.Tr>
        ))}
      </DataTable>
    </QueryContent>
  );
}

const WEBHOOK_COLUMNS = ['Endpoint', 'Events', 'Status', 'Actions'];

export function WebhooksPage() {
  const hooks = useWebhooks();
  const update = useUpdateWebhook();
  const remove = useDeleteWebhook();
  const test = useSendTestEvent();
  const [creating, setCreating] = useState(false);
  const [created, setCreated] = useState<WebhookCreated | null>(null);
  const [logOf, setLogOf] = useState<Webhook | null>(null);
  const list = hooks.data ?? [];
  const failed = (what: string) => (err: unknown) => notifications.show({ color: 'red', title: what, message: errorMessage(err) });

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>Webhooks</Title>
        <Button leftSection={<IconPlus size={16} />} onClick={() => setCreating(true)}>
          New webhook
        </Button>
      </Group>
      <QueryContent
        query={hooks}
        errorTitle="Could not load webhooks"
        isEmpty={list.length === 0}
        empty={<EmptyState title="No webhooks" />}
      >
        <DataTable minWidth={700} columns={WEBHOOK_COLUMNS}>
          {list.map((h) => (
            <Table.Tr key={h.id} data-webhook={h.id}>
              <Table.Td>
                <Text size="sm" style={{ wordBreak: 'break-all' }}>
                  {h.url}
                </Text>
              </Table.Td>
              <Table.Td>
                <Group gap={4}>
                  {h.event_types.map((e) => (
                    <Badge key={e} variant="outline" size="sm">
                      {e}
                    </Badge>
                  ))}
                </Group>
              </Table.Td>
              <Table.Td>
                <Badge color={h.enabled ? 'green' : 'gray'} variant="light">
                  {h.enabled ? 'enabled' : 'disabled'}
                </Badge>
              </Table.Td>
              <Table.Td>
                <Group gap="xs" wrap="nowrap">
                  <Button size="xs" variant="default" onClick={() => setLogOf(h)}>
                    Deliveries
                  </Button>
                  <Button
                    size="xs"
                    variant="default"
                    loading={test.isPending && test.variables === h.id}
                    onClick={() =>
                      test.mutate(h.id, {
                        onSuccess: () => notifications.show({ color: 'green', title: 'Test event queued', message: h.url }),
                        onError: failed('Could not send a test event'),
                      })
                    }
                  >
                    Send test
                  </Button>
                  <Button
                    size="xs"
                    variant="default"
                    loading={update.isPending && update.variables?.id === h.id}
                    onClick={() => update.mutate({ id: h.id, enabled: !h.enabled }, { onError: failed('Could not change the webhook') })}
                  >
                    {h.enabled ? 'Disable' : 'Enable'}
                  </Button>
                  <Button
                    size="xs"
                    variant="subtle"
                    color="red"
                    loading={remove.isPending && remove.variables === h.id}
                    onClick={() => remove.mutate(h.id, { onError: failed('Could not remove the webhook') })}
                    aria-label={`Remove the webhook to ${h.url}`}
                  >
                    Remove
                  </Button>
                </Group>
              </Table.Td>
            </Table.Tr>
          ))}
        </DataTable>
      </QueryContent>
      <Modal opened={creating} onClose={() => setCreating(false)} title="New webhook">
        {creating && (
          <NewWebhookForm
            onCancel={() => setCreating(false)}
            onCreated={(hook) => {
              setCreating(false);
              setCreated(hook);
            }}
          />
        )}
      </Modal>
      <Modal opened={created !== null} onClose={() => setCreated(null)} title="Webhook registered" closeOnClickOutside={false}>
        {created && <SecretOnce hook={created} onDone={() => setCreated(null)} />}
      </Modal>
      <Modal opened={logOf !== null} onClose={() => setLogOf(null)} title={logOf ? `Deliveries to ${logOf.url}` : ''} size="xl">
        {logOf && <DeliveryLog hook={logOf} />}
      </Modal>
    </Stack>
  );
}
