import { Badge, Tooltip } from '@mantine/core';
import { useLiveEvents } from '../auth/EventsContext';

const LABEL = { live: 'Live', connecting: 'Connecting…', reconnecting: 'Reconnecting…', closed: 'Offline' } as const;
const COLOR = { live: 'green', connecting: 'gray', reconnecting: 'yellow', closed: 'gray' } as const;

export function LiveIndicator() {
  const { status, podName } = useLiveEvents();
  const tip =
    status === 'live'
      ? `Live updates from replica ${podName ?? 'unknown'}`
      : status === 'reconnecting'
        ? 'Live updates interrupted: reconnecting (pages still refresh periodically)'
        : 'Live updates not connected';
  return (
    <Tooltip label={tip}>
      <Badge
        color={COLOR[status]}
        variant="dot"
        size="lg"
        role="status"
        aria-label={`Live updates: ${LABEL[status]}${podName && status === 'live' ? ` (replica ${podName})` : ''}`}
        data-testid="live-indicator"
        data-status={status}
      >
        {LABEL[status]}
      </Badge>
    </Tooltip>
  );
}
