import { Anchor, Group, Stack, Switch, Text, Title } from '@mantine/core';
import { useState } from 'react';
import { Link } from 'react-router';
import { useSessions } from '../api/queries';
import { useLiveEvents } from '../auth/EventsContext';
import { EmptyState, QueryContent } from '../components/QueryState';
import { QuotaUsage } from '../components/QuotaUsage';
import { SessionsTable } from '../components/SessionsTable';

export function MySessionsPage() {
  const [showEnded, setShowEnded] = useState(false);
  const live = useLiveEvents();
  const sessions = useSessions({ includeTerminated: showEnded }, live.status === 'live' ? 30_000 : 5_000);
  const list = [...(sessions.data ?? [])].sort((a, b) => b.created_at.localeCompare(a.created_at));

  return (
    <Stack>
      <Group justify="space-between" align="flex-end">
        <Title order={2}>My sessions</Title>
        <Switch label="Show ended sessions" checked={showEnded} onChange={(e) => setShowEnded(e.currentTarget.checked)} />
      </Group>
      <QuotaUsage />
      <QueryContent
        query={sessions}
        errorTitle="Could not load your sessions"
        isEmpty={list.length === 0}
        empty={
          <EmptyState title={showEnded ? 'No sessions yet' : 'No active sessions'}>
            <Text size="sm" c="dimmed">
              Start one from the{' '}
              <Anchor component={Link} to="/">
                catalog
              </Anchor>
              .
            </Text>
          </EmptyState>
        }
      >
        <SessionsTable sessions={list} caption="My sessions" />
      </QueryContent>
    </Stack>
  );
}
