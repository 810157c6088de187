import { Badge, Stack, Table, Text, Title } from '@mantine/core';
import { usePods } from '../../api/queries';
import { DataTable } from '../../components/DataTable';
import { EmptyState, QueryContent } from '../../components/QueryState';

const REPLICA_COLUMNS = ['Name', 'Status', 'Connected agents', 'Version', 'Internal URL'];

export function ReplicasPage() {
  const pods = usePods();
  const list = [...(pods.data ?? [])].sort((a, b) => a.pod_name.localeCompare(b.pod_name));
  return (
    <Stack>
      <Title order={2}>Replicas</Title>
      <QueryContent
        query={pods}
        errorTitle="Could not load replicas"
        isEmpty={list.length === 0}
        empty={<EmptyState title="No replicas reported" />}
      >
        <DataTable minWidth={640} columns={REPLICA_COLUMNS}>
          {list.map((p) => (
            <Table.Tr key={p.pod_name} data-pod-name={p.pod_name}>
              <Table.Td>
                <Text size="sm" ff="monospace">
                  {p.pod_name}
                </Text>
              </Table.Td>
              <Table.Td>
                <Badge color={p.alive ? 'green' : 'red'} variant="light">
                  {p.alive ? 'alive' : 'down'}
                </Badge>
              </Table.Td>
              <Table.Td>{p.connected_agents}</Table.Td>
              <Table.Td>{p.version}</Table.Td>
              <Table.Td>
                <Text size="sm" ff="monospace">
                  {p.internal_url}
                </Text>
              </Table.Td>
            </Table.Tr>
          ))}
        </DataTable>
      </QueryContent>
    </Stack>
  );
}
