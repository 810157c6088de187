import { Badge, type BadgeProps } from '@mantine/core';
import type { SessionState } from '../api/types';
import { STATE_COLORS } from '../lib/sessions';

export function StateBadge({ state, title, ...props }: { state: SessionState; title?: string } & BadgeProps) {
  return (
    // A control plane newer than this UI may send a state it has no colour for.
    <Badge color={STATE_COLORS[state] ?? 'gray'} variant="light" title={title} {...props}>
      {state}
    </Badge>
  );
}
