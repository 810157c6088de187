import { Badge, Stack, Table, Text, Title } from '@mantine/core';
import { usePods } from '../../api/queries';
import { EmptyState, ErrorState, LoadingRows } from '../../components/QueryState';

export function ReplicasPage() {
  const pods = usePods();
  const list = [...(pods.data ?? [])].sort((a, b) => a.pod_name.localeCompare(b.pod_name));
  return (
    <Stack>
      <Title order={2}>Replicas</Title>
      {pods.isPending ? (
        <LoadingRows />
      ) : pods.isError ? (
        <ErrorState error={pods.error} onRetry={() => void pods.refetch()} title="Could not load replicas" />
      ) : list.length === 0 ? (
        <EmptyState title="No replicas reported" />
      ) : (
        <Table.ScrollContainer minWidth={640}>
          <Table striped verticalSpacing="sm">
            <Table.Thead>
              <Table.Tr>
                <Table.Th scope="col">Name</Table.Th>
                <Table.Th scope="col">Status</Table.Th>
                <Table.Th scope="col">Connected agents</Table.Th>
                <Table.Th scope="col">Version</Table.Th>
                <Table.Th scope="col">Internal URL</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
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
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
    </Stack>
  );
}
