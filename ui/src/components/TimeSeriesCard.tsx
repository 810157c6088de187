import '@mantine/charts/styles.css';
import { AreaChart, LineChart, type AreaChartSeries, type LineChartSeries } from '@mantine/charts';
import { Group, Paper, Text, Title } from '@mantine/core';

const CHARTS = { area: AreaChart, line: LineChart };

interface Props {
  title: string;
  /** A note on the right of the title, such as the time span. */
  note?: string;
  kind: keyof typeof CHARTS;
  /** The points, each with a `time` label for the x axis. */
  data: Record<string, unknown>[];
  /** The lines to draw; a colour is required so that either kind of chart takes them. */
  series: (AreaChartSeries & LineChartSeries)[];
}

/** A bordered card with a heading and a time-series chart, or "No data yet" when there are no points. */
export function TimeSeriesCard({ title, note, kind, data, series }: Props) {
  const Chart = CHARTS[kind];
  return (
    <Paper withBorder p="md" radius="md">
      <Group justify="space-between" mb="sm">
        <Title order={3} size="h5">
          {title}
        </Title>
        {note !== undefined && (
          <Text size="xs" c="dimmed">
            {note}
          </Text>
        )}
      </Group>
      {data.length === 0 ? (
        <Text c="dimmed" size="sm">
          No data yet
        </Text>
      ) : (
        <Chart h={220} data={data} dataKey="time" withLegend curveType="monotone" series={series} />
      )}
    </Paper>
  );
}
