import { Group, Text } from '@mantine/core';
import { useQuota, type QuotaScope } from '../api/quotas';

type Resource = 'sessions' | 'cpu_millicores' | 'memory_mb';
const RESOURCES: Resource[] = ['sessions', 'cpu_millicores', 'memory_mb'];

function amount(resource: Resource, value: number): string {
  if (resource === 'cpu_millicores') return `${+(value / 1000).toFixed(2)}`;
  if (resource === 'memory_mb') return value >= 1024 ? `${+(value / 1024).toFixed(1)}` : `${value}`;
  return `${value}`;
}

function unit(resource: Resource, limit: number): string {
  if (resource === 'cpu_millicores') return 'CPU';
  if (resource === 'memory_mb') return limit >= 1024 ? 'GiB' : 'MiB';
  return limit === 1 ? 'session' : 'sessions';
}

/** "2 of 3 sessions · 2 of 4 CPU · 1 of 8 GiB" for the limits in effect; null when none. */
export function describeScope(scope: QuotaScope): { text: string; full: boolean } | null {
  const parts: string[] = [];
  let full = false;
  for (const r of RESOURCES) {
    const limit = scope.limits[r];
    if (limit === null || limit === undefined) continue;
    const used = scope.usage[r];
    full ||= used >= limit;
    // the used amount in the limit's unit, so "512 MiB of 8 GiB" reads "0.5 of 8 GiB"
    const shown = r === 'memory_mb' && limit >= 1024 ? `${+(used / 1024).toFixed(1)}` : amount(r, used);
    parts.push(`${shown} of ${amount(r, limit)} ${unit(r, limit)}`);
  }
  return parts.length ? { text: parts.join(' · '), full } : null;
}

/** The signed-in user's usage against their limits and their org's; nothing without limits. */
export function QuotaUsage() {
  const quota = useQuota();
  if (!quota.data) return null;
  const rows = [
    { label: 'Your quota', scope: describeScope(quota.data.user) },
    { label: 'Your organisation', scope: describeScope(quota.data.org) },
  ].filter((row) => row.scope !== null);
  if (rows.length === 0) return null;
  return (
    <Group gap="lg" role="status" aria-label="Quota usage">
      {rows.map(({ label, scope }) => (
        <Text key={label} size="sm" c={scope?.full ? 'red' : 'dimmed'}>
          {label}: {scope?.text}
          {scope?.full ? ' (limit reached)' : ''}
        </Text>
      ))}
    </Group>
  );
}
