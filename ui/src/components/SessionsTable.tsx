import { Button, Group, Table, Text, VisuallyHidden } from '@mantine/core';
import { IconExternalLink, IconPlayerPause, IconPlayerPlay, IconTrash } from '@tabler/icons-react';
import { Link } from 'react-router';
import type { Session } from '../api/types';
import { sessionActions } from '../lib/sessions';
import { DataTable } from './DataTable';
import { RelativeTime } from './RelativeTime';
import { StateBadge } from './StateBadge';
import { useSessionActions } from './useSessionActions';

interface Props {
  sessions: Session[];
  /** Admin view: show the owner, and only the (forced) Terminate action besides Open. */
  admin?: boolean;
  caption: string;
}

export function SessionsTable({ sessions, admin = false, caption }: Props) {
  const { run, confirmTerminate, pending } = useSessionActions();

  return (
    <DataTable
      minWidth={720}
      highlightOnHover
      caption={caption}
      columns={['App', ...(admin ? ['Owner'] : []), 'State', 'Age', 'Idle', <VisuallyHidden>Actions</VisuallyHidden>]}
    >
      {sessions.map((s) => {
        const can = sessionActions(s.state);
        const busy = pending?.id === s.id;
        // Each action's accessible name says which session it acts on: "Terminate" alone is
        // one of many identical buttons to a screen reader (and to a test).
        const label = (verb: string) => `${verb} ${s.template} session ${s.id}`;
        return (
          <Table.Tr key={s.id} data-session-id={s.id} data-state={s.state}>
            <Table.Td>
              <Text size="sm" fw={500}>
                {s.template}
              </Text>
              <Text size="xs" c="dimmed" ff="monospace">
                {s.id}
              </Text>
            </Table.Td>
            {admin && <Table.Td>{s.owner ?? s.user_id}</Table.Td>}
            <Table.Td>
              <StateBadge state={s.state} title={s.state_reason || undefined} />
            </Table.Td>
            <Table.Td>
              <RelativeTime iso={s.created_at} />
            </Table.Td>
            <Table.Td>{can.open ? <RelativeTime iso={s.last_activity_at} mode="duration" /> : <Text size="sm">—</Text>}</Table.Td>
            <Table.Td>
              <Group gap="xs" justify="flex-end" wrap="nowrap">
                {can.open && !admin && (
                  <Button
                    component={Link}
                    to={`/sessions/${encodeURIComponent(s.id)}`}
                    size="xs"
                    variant="light"
                    leftSection={<IconExternalLink size={14} />}
                    aria-label={label('Open')}
                  >
                    Open
                  </Button>
                )}
                {can.hibernate && !admin && (
                  <Button
                    size="xs"
                    variant="default"
                    leftSection={<IconPlayerPause size={14} />}
                    loading={busy && pending?.action === 'hibernate'}
                    onClick={() => run(s, 'hibernate')}
                    aria-label={label('Hibernate')}
                  >
                    Hibernate
                  </Button>
                )}
                {can.resume && !admin && (
                  <Button
                    size="xs"
                    variant="default"
                    leftSection={<IconPlayerPlay size={14} />}
                    loading={busy && pending?.action === 'resume'}
                    onClick={() => run(s, 'resume')}
                    aria-label={label('Resume')}
                  >
                    Resume
                  </Button>
                )}
                {can.terminate && (
                  <Button
                    size="xs"
                    color="red"
                    variant="light"
                    leftSection={<IconTrash size={14} />}
                    loading={busy && pending?.action === 'terminate'}
                    onClick={() => confirmTerminate(s)}
                    aria-label={label('Terminate')}
                  >
                    Terminate
                  </Button>
                )}
              </Group>
            </Table.Td>
          </Table.Tr>
        );
      })}
    </DataTable>
  );
}
