import { Card, SimpleGrid, Skeleton, Stack, Text, Title } from '@mantine/core';
import { useOverview } from '../../api/queries';
import { ErrorState } from '../../components/QueryState';
import { TimeSeriesCard } from '../../components/TimeSeriesCard';

function Stat({ title, value, hint }: { title: string; value: number | string; hint?: string }) {
  return (
    <Card withBorder radius="md" role="group" aria-label={title}>
      <Text size="sm" c="dimmed" fw={500}>
        {title}
      </Text>
      <Text fz={32} fw={700} lh={1.2}>
        {value}
      </Text>
      {hint && (
        <Text size="xs" c="orange">
          {hint}
        </Text>
      )}
    </Card>
  );
}

const timeLabel = (iso: string) => new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

export function OverviewPage() {
  const overview = useOverview(60, 30);

  if (overview.isPending) {
    return (
      <SimpleGrid cols={{ base: 2, md: 4 }} aria-busy="true" aria-label="Loading overview">
        {Array.from({ length: 4 }, (_, i) => (
          <Skeleton key={i} height={100} />
        ))}
      </SimpleGrid>
    );
  }
  if (overview.isError) {
    return <ErrorState error={overview.error} onRetry={() => void overview.refetch()} title="Could not load the overview" />;
  }
  const o = overview.data;
  const series = o.series.map((p) => ({ ...p, time: timeLabel(p.t) }));
  const pending = o.agents_pending;

  return (
    <Stack>
      <Title order={2}>Overview</Title>
      <SimpleGrid cols={{ base: 2, md: 4 }}>
        <Stat
          title="Agents connected"
          value={o.agents_connected}
          hint={pending > 0 ? `${pending} agent${pending === 1 ? '' : 's'} awaiting approval` : undefined}
        />
        <Stat title="Active sessions" value={o.sessions_active} />
        <Stat title="Commands dispatched" value={o.commands_dispatched_total} />
        <Stat title="Commands failed" value={o.commands_failed_total} />
      </SimpleGrid>
      <SimpleGrid cols={{ base: 1, lg: 2 }}>
        <TimeSeriesCard
          title="Sessions over time"
          note={`last hour, per ${Math.round(o.bucket_seconds / 60)} min`}
          kind="area"
          data={series}
          series={[
            { name: 'sessions_active', label: 'Active', color: 'teal.6' },
            { name: 'sessions_started', label: 'Started', color: 'blue.6' },
          ]}
        />
        <TimeSeriesCard
          title="Commands over time"
          kind="line"
          data={series}
          series={[
            { name: 'commands_dispatched', label: 'Dispatched', color: 'indigo.6' },
            { name: 'commands_failed', label: 'Failed', color: 'red.6' },
          ]}
        />
      </SimpleGrid>
    </Stack>
  );
}
