import { Text, Tooltip } from '@mantine/core';
import { absoluteTime, durationSince, relativeTime, useNow } from '../lib/time';

/** "3 min ago", with the absolute time as a tooltip (and title). */
export function RelativeTime({ iso, mode = 'ago' }: { iso: string | null | undefined; mode?: 'ago' | 'duration' }) {
  const now = useNow();
  if (!iso)
    return (
      <Text span size="sm">
        —
      </Text>
    );
  const label = absoluteTime(iso);
  return (
    <Tooltip label={label} openDelay={300}>
      <Text span size="sm" title={label}>
        <time dateTime={iso}>{mode === 'ago' ? relativeTime(iso, now) : durationSince(iso, now)}</time>
      </Text>
    </Tooltip>
  );
}
