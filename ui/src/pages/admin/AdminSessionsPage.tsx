import { Group, NativeSelect, Stack, Switch, TextInput, Title } from '@mantine/core';
import { IconSearch } from '@tabler/icons-react';
import { useState } from 'react';
import { useSessions } from '../../api/queries';
import { useLiveEvents } from '../../auth/EventsContext';
import { EmptyState, QueryContent } from '../../components/QueryState';
import { SessionsTable } from '../../components/SessionsTable';
import { SESSION_STATES, sessionMatches } from '../../lib/sessions';

export function AdminSessionsPage() {
  const [state, setState] = useState('');
  const [search, setSearch] = useState('');
  const [showEnded, setShowEnded] = useState(false);
  const live = useLiveEvents();
  // Asking for an ended state only makes sense with ended sessions included.
  const includeTerminated = showEnded || state === 'terminated' || state === 'failed';
  const sessions = useSessions({ all: true, includeTerminated, state }, live.status === 'live' ? 30_000 : 5_000);
  const list = (sessions.data ?? []).filter((s) => sessionMatches(s, search)).sort((a, b) => b.created_at.localeCompare(a.created_at));

  return (
    <Stack>
      <Title order={2}>All sessions</Title>
      <Group align="flex-end" wrap="wrap">
        <NativeSelect
          label="State"
          value={state}
          onChange={(e) => setState(e.currentTarget.value)}
          data={[{ value: '', label: 'Any state' }, ...SESSION_STATES.map((s) => ({ value: s, label: s }))]}
        />
        <TextInput
          label="Search owner or app"
          leftSection={<IconSearch size={16} />}
          value={search}
          onChange={(e) => setSearch(e.currentTarget.value)}
        />
        <Switch label="Show ended sessions" checked={showEnded} onChange={(e) => setShowEnded(e.currentTarget.checked)} mb={8} />
      </Group>
      <QueryContent
        query={sessions}
        errorTitle="Could not load sessions"
        isEmpty={list.length === 0}
        empty={<EmptyState title="No sessions match" />}
      >
        <SessionsTable sessions={list} admin caption="All sessions in the organisation" />
      </QueryContent>
    </Stack>
  );
}
