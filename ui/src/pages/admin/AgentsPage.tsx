import { Alert, Badge, Button, Code, CopyButton, Group, Progress, Stack, Table, Text, Title, Tooltip } from '@mantine/core';
import { modals } from '@mantine/modals';
import { notifications } from '@mantine/notifications';
import { IconCheck, IconCopy, IconKey, IconX } from '@tabler/icons-react';
import { errorMessage } from '../../api/client';
import { useAgentAction, useAgents, useRotateKey } from '../../api/queries';
import type { Agent, AgentKey } from '../../api/types';
import { DataTable } from '../../components/DataTable';
import { EmptyState, QueryContent } from '../../components/QueryState';
import { RelativeTime } from '../../components/RelativeTime';

function StatusBadge({ agent }: { agent: Agent }) {
  if (agent.approval_status !== 'approved') {
    return (
      <Badge color={agent.approval_status === 'pending' ? 'yellow' : 'red'} variant="light">
        {agent.approval_status}
      </Badge>
    );
  }
  const online = agent.status === 'online';
  return (
    <Badge color={online ? 'green' : 'gray'} variant={online ? 'light' : 'outline'}>
      {online ? 'online' : 'offline'}
    </Badge>
  );
}

function Load({ agent }: { agent: Agent }) {
  const max = agent.max_sessions;
  const used = agent.active_sessions;
  const pct = max > 0 ? Math.min(100, (used / max) * 100) : used > 0 ? 100 : 0;
  const label = `${used} of ${max} sessions`;
  return (
    <Stack gap={2} miw={110}>
      <Progress value={pct} color={pct >= 90 ? 'red' : pct >= 70 ? 'orange' : 'blue'} aria-label={`Load of ${agent.id}: ${label}`} />
      <Text size="xs" c="dimmed">
        {used} / {max}
      </Text>
    </Stack>
  );
}

function showKey(key: AgentKey) {
  modals.open({
    title: `New API key for ${key.agentId}`,
    closeOnClickOutside: false,
    children: (
      <Stack>
        <Alert color="yellow" title="This key is shown only once">
          Copy it now and configure the agent with it: it cannot be displayed again. {key.message}
        </Alert>
        <Code block data-testid="agent-api-key" style={{ wordBreak: 'break-all' }}>
          {key.apiKey}
        </Code>
        <Group justify="flex-end">
          <CopyButton value={key.apiKey}>
            {({ copied, copy }) => (
              <Button
                leftSection={copied ? <IconCheck size={16} /> : <IconCopy size={16} />}
                color={copied ? 'teal' : undefined}
                onClick={copy}
              >
                {copied ? 'Copied' : 'Copy key'}
              </Button>
            )}
          </CopyButton>
          <Button variant="default" onClick={() => modals.closeAll()}>
            Done
          </Button>
        </Group>
      </Stack>
    ),
  });
}

const AGENT_COLUMNS = ['Agent', 'Status', 'Platform', 'Region', 'Load', 'Replica', 'Last heartbeat', 'Draining', 'Actions'];

export function AgentsPage() {
  const agents = useAgents();
  const action = useAgentAction();
  const rotate = useRotateKey();

  const decide = (agent: Agent, verb: 'approve' | 'reject') =>
    action.mutate(
      { id: agent.id, action: verb },
      {
        onSuccess: () =>
          notifications.show({ color: 'green', title: verb === 'approve' ? 'Agent approved' : 'Agent rejected', message: agent.id }),
        onError: (err) => notifications.show({ color: 'red', title: `Could not ${verb} ${agent.id}`, message: errorMessage(err) }),
      },
    );

  const confirmRotate = (agent: Agent) =>
    modals.openConfirmModal({
      title: `Rotate the key of ${agent.id}?`,
      children: <Text size="sm">The agent's current key stops working at once; it must be reconfigured with the new key.</Text>,
      labels: { confirm: 'Rotate key', cancel: 'Cancel' },
      confirmProps: { color: 'orange' },
      onConfirm: () =>
        rotate.mutate(agent.id, {
          onSuccess: showKey,
          onError: (err) =>
            notifications.show({ color: 'red', title: `Could not rotate the key of ${agent.id}`, message: errorMessage(err) }),
        }),
    });

  const list = [...(agents.data ?? [])].sort((a, b) => a.id.localeCompare(b.id));
  const busy = (id: string, verb: string) => action.isPending && action.variables?.id === id && action.variables.action === verb;

  return (
    <Stack>
      <Title order={2}>Agents</Title>
      <QueryContent
        query={agents}
        errorTitle="Could not load agents"
        isEmpty={list.length === 0}
        empty={
          <EmptyState title="No agents registered">
            <Text size="sm" c="dimmed">
              Agents appear here when they register with the control plane.
            </Text>
          </EmptyState>
        }
      >
        <DataTable minWidth={900} columns={AGENT_COLUMNS}>
          {list.map((a) => (
            <Table.Tr key={a.id} data-agent-id={a.id}>
              <Table.Td>
                <Text size="sm" ff="monospace">
                  {a.id}
                </Text>
                <Text size="xs" c="dimmed">
                  epoch {a.epoch}
                </Text>
              </Table.Td>
              <Table.Td>
                <StatusBadge agent={a} />
              </Table.Td>
              <Table.Td>{a.platform}</Table.Td>
              <Table.Td>{a.region}</Table.Td>
              <Table.Td>
                <Load agent={a} />
              </Table.Td>
              <Table.Td>
                <Text size="sm" ff="monospace">
                  {a.pod_name ?? '—'}
                </Text>
              </Table.Td>
              <Table.Td>
                <RelativeTime iso={a.last_heartbeat} />
              </Table.Td>
              <Table.Td>
                {a.draining ? (
                  <Badge color="orange" variant="light">
                    draining
                  </Badge>
                ) : (
                  <Text size="sm">no</Text>
                )}
              </Table.Td>
              <Table.Td>
                <Group gap="xs" wrap="nowrap">
                  {a.approval_status === 'pending' && (
                    <>
                      <Button
                        size="xs"
                        color="green"
                        leftSection={<IconCheck size={14} />}
                        loading={busy(a.id, 'approve')}
                        aria-label={`Approve agent ${a.id}`}
                        onClick={() => decide(a, 'approve')}
                      >
                        Approve
                      </Button>
                      <Button
                        size="xs"
                        color="red"
                        variant="light"
                        leftSection={<IconX size={14} />}
                        loading={busy(a.id, 'reject')}
                        aria-label={`Reject agent ${a.id}`}
                        onClick={() => decide(a, 'reject')}
                      >
                        Reject
                      </Button>
                    </>
                  )}
                  {a.approval_status === 'approved' && (
                    <Tooltip label="Issue a new API key for this agent">
                      <Button
                        size="xs"
                        variant="default"
                        leftSection={<IconKey size={14} />}
                        loading={rotate.isPending && rotate.variables === a.id}
                        aria-label={`Rotate key of agent ${a.id}`}
                        onClick={() => confirmRotate(a)}
                      >
                        Rotate key
                      </Button>
                    </Tooltip>
                  )}
                </Group>
              </Table.Td>
            </Table.Tr>
          ))}
        </DataTable>
      </QueryContent>
    </Stack>
  );
}
