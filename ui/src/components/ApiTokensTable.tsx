import { Badge, Button, Code, Table, Text } from '@mantine/core';
import { modals } from '@mantine/modals';
import { notifications } from '@mantine/notifications';
import { errorMessage } from '../api/client';
import type { useRevokeApiToken } from '../api/queries';
import type { ApiToken } from '../api/types';
import { RelativeTime } from './RelativeTime';

const STATUS_COLOR: Record<ApiToken['status'], string> = { active: 'green', expired: 'gray', revoked: 'red' };

/** Revoke after a confirmation, with a notification either way. */
export function useConfirmRevoke(revoke: ReturnType<typeof useRevokeApiToken>) {
  return (token: ApiToken) =>
    modals.openConfirmModal({
      title: `Revoke the token "${token.name}"?`,
      children: <Text size="sm">Whatever uses it is refused from now on, on every replica. This cannot be undone.</Text>,
      labels: { confirm: 'Revoke', cancel: 'Cancel' },
      confirmProps: { color: 'red' },
      onConfirm: () =>
        revoke.mutate(token.id, {
          onSuccess: () => notifications.show({ color: 'green', title: 'Token revoked', message: token.name }),
          onError: (err) => notifications.show({ color: 'red', title: `Could not revoke ${token.name}`, message: errorMessage(err) }),
        }),
    });
}

/** Personal API tokens (never their secrets): prefix, scope, dates, last use, status, and Revoke for live ones. */
export function ApiTokensTable({
  tokens,
  onRevoke,
  revoking,
  showOwner = false,
}: {
  tokens: ApiToken[];
  onRevoke: (token: ApiToken) => void;
  revoking?: string;
  showOwner?: boolean;
}) {
  return (
    <Table.ScrollContainer minWidth={640}>
      <Table aria-label="API tokens">
        <Table.Thead>
          <Table.Tr>
            {showOwner && <Table.Th>Owner</Table.Th>}
            <Table.Th>Name</Table.Th>
            <Table.Th>Prefix</Table.Th>
            <Table.Th>Scope</Table.Th>
            <Table.Th>Created</Table.Th>
            <Table.Th>Expires</Table.Th>
            <Table.Th>Last used</Table.Th>
            <Table.Th>Status</Table.Th>
            <Table.Th />
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {tokens.map((t) => (
            <Table.Tr key={t.id}>
              {showOwner && <Table.Td>{t.username}</Table.Td>}
              <Table.Td>{t.name}</Table.Td>
              <Table.Td>
                <Code>{t.prefix}…</Code>
              </Table.Td>
              <Table.Td>{t.scope === 'read' ? 'read-only' : 'full'}</Table.Td>
              <Table.Td>
                <RelativeTime iso={t.created_at} />
              </Table.Td>
              <Table.Td>
                <RelativeTime iso={t.expires_at} />
              </Table.Td>
              <Table.Td>
                <RelativeTime iso={t.last_used_at} />
                {t.last_used_address && (
                  <Text span size="xs" c="dimmed">
                    {' '}
                    from {t.last_used_address}
                  </Text>
                )}
              </Table.Td>
              <Table.Td>
                <Badge color={STATUS_COLOR[t.status]} variant="light" title={t.revoked_by ? `revoked by ${t.revoked_by}` : undefined}>
                  {t.status}
                </Badge>
              </Table.Td>
              <Table.Td>
                {t.status === 'active' && (
                  <Button
                    size="xs"
                    color="red"
                    variant="light"
                    aria-label={`Revoke ${t.name}`}
                    loading={revoking === t.id}
                    onClick={() => onRevoke(t)}
                  >
                    Revoke
                  </Button>
                )}
              </Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
    </Table.ScrollContainer>
  );
}
