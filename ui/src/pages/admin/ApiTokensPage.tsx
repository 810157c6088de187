import { Stack, Text, Title } from '@mantine/core';
import { useOrgApiTokens, useRevokeApiToken } from '../../api/queries';
import { ApiTokensTable, useConfirmRevoke } from '../../components/ApiTokensTable';
import { QueryContent } from '../../components/QueryState';

/** The API tokens of the org's users (a platform admin: of every org), to revoke those of someone who left. */
export function ApiTokensPage() {
  const tokens = useOrgApiTokens();
  const revoke = useRevokeApiToken();
  const confirmRevoke = useConfirmRevoke(revoke);
  return (
    <Stack>
      <Title order={2}>API tokens</Title>
      <Text size="sm" c="dimmed">
        Your users' personal API tokens. Disabling or removing a user revokes theirs; revoke one here when it leaked or is no longer needed.
      </Text>
      <QueryContent
        query={tokens}
        errorTitle="Could not load the API tokens"
        isEmpty={(tokens.data ?? []).length === 0}
        empty={
          <Text size="sm" c="dimmed">
            Nobody has an API token.
          </Text>
        }
      >
        <ApiTokensTable
          tokens={tokens.data ?? []}
          onRevoke={confirmRevoke}
          revoking={revoke.isPending ? revoke.variables : undefined}
          showOwner
        />
      </QueryContent>
    </Stack>
  );
}
