import { Badge, type BadgeProps } from '@mantine/core';
import { STATE_COLORS } from '../lib/sessions';

export function StateBadge({ state, title, ...props }: { state: string; title?: string } & BadgeProps) {
  return (
    <Badge color={STATE_COLORS[state] ?? 'gray'} variant="light" title={title} {...props}>
      {state}
    </Badge>
  );
}
