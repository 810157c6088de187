import { Alert, Button, Code, Group, Stack, Table, Text, TextInput, Title } from '@mantine/core';
import { IconDownload, IconSearch } from '@tabler/icons-react';
import { useState } from 'react';
import { errorMessage } from '../../api/client';
import { exportAudit, useAudit, type AuditFilter } from '../../api/queries';
import { DataTable } from '../../components/DataTable';
import { EmptyState, QueryContent } from '../../components/QueryState';
import { RelativeTime } from '../../components/RelativeTime';

const COLUMNS = ['When', 'Actor', 'Action', 'Target', 'Address', 'Request', 'Detail'];
const NO_FILTER: AuditFilter = { action: '', actor: '', target: '', since: '' };

/** The audit trail: who did what, to whom, from where; filtered, newest first, exportable. */
export function AuditPage() {
  const [draft, setDraft] = useState<AuditFilter>(NO_FILTER);
  const [filter, setFilter] = useState<AuditFilter>(NO_FILTER);
  const [exporting, setExporting] = useState(false);
  const [exportError, setExportError] = useState<string | null>(null);
  const audit = useAudit(filter);
  const events = audit.data?.pages.flatMap((p) => p.events) ?? [];

  const field = (key: keyof AuditFilter) => ({
    value: draft[key],
    onChange: (e: React.ChangeEvent<HTMLInputElement>) => setDraft({ ...draft, [key]: e.currentTarget.value }),
  });

  async function download() {
    setExporting(true);
    setExportError(null);
    try {
      const blob = await exportAudit(filter);
      const link = document.createElement('a');
      link.href = URL.createObjectURL(blob);
      link.download = `audit-${new Date().toISOString().replace(/[:.]/g, '-')}.jsonl`;
      link.click();
      URL.revokeObjectURL(link.href);
    } catch (err) {
      setExportError(errorMessage(err));
    } finally {
      setExporting(false);
    }
  }

  return (
    <Stack>
      <Title order={2}>Audit trail</Title>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          setFilter({ ...draft, since: draft.since ? new Date(draft.since).toISOString() : '' });
        }}
      >
        <Group align="flex-end" wrap="wrap">
          <TextInput label="Action" placeholder="auth.* or session.create" {...field('action')} />
          <TextInput label="Actor" placeholder="username" {...field('actor')} />
          <TextInput label="Target" placeholder="id or name" {...field('target')} />
          <TextInput label="Since" type="datetime-local" {...field('since')} />
          <Button type="submit" leftSection={<IconSearch size={16} />} variant="light">
            Filter
          </Button>
          <Button leftSection={<IconDownload size={16} />} variant="subtle" loading={exporting} onClick={() => void download()}>
            Export JSON lines
          </Button>
        </Group>
      </form>
      {exportError && (
        <Alert color="red" title="Export failed">
          {exportError}
        </Alert>
      )}
      <QueryContent
        query={audit}
        errorTitle="Could not load the audit trail"
        isEmpty={events.length === 0}
        empty={<EmptyState title="No events match" />}
      >
        <DataTable minWidth={900} columns={COLUMNS}>
          {events.map((e) => (
            <Table.Tr key={e.id} data-audit-action={e.action}>
              <Table.Td>
                <RelativeTime iso={e.created_at} />
              </Table.Td>
              <Table.Td>{e.actor}</Table.Td>
              <Table.Td>
                <Text size="sm" ff="monospace">
                  {e.action}
                </Text>
              </Table.Td>
              <Table.Td>
                <Text size="sm" ff="monospace">
                  {e.target}
                </Text>
              </Table.Td>
              <Table.Td>{e.address}</Table.Td>
              <Table.Td>
                <Text size="xs" ff="monospace">
                  {e.request_id}
                </Text>
              </Table.Td>
              <Table.Td>{Object.keys(e.detail).length > 0 && <Code>{JSON.stringify(e.detail)}</Code>}</Table.Td>
            </Table.Tr>
          ))}
        </DataTable>
        {audit.hasNextPage && (
          <Button variant="subtle" loading={audit.isFetchingNextPage} onClick={() => void audit.fetchNextPage()}>
            Load older events
          </Button>
        )}
      </QueryContent>
    </Stack>
  );
}
