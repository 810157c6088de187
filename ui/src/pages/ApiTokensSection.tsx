import { Alert, Button, Code, CopyButton, Group, NativeSelect, Paper, Stack, Text, TextInput, Title } from '@mantine/core';
import { IconAlertTriangle, IconCheck, IconCopy } from '@tabler/icons-react';
import { useState, type FormEvent } from 'react';
import { errorMessage } from '../api/client';
import { useApiTokens, useCreateApiToken, useRevokeApiToken } from '../api/queries';
import type { ApiTokenCreated } from '../api/types';
import { ApiTokensTable, useConfirmRevoke } from '../components/ApiTokensTable';
import { QueryContent } from '../components/QueryState';

const EXPIRY_DAYS = ['7', '30', '90', '365'];
const SCOPES = [
  { value: 'read', label: 'Read-only (GET)' },
  { value: 'full', label: 'Full access' },
];

/** Personal API tokens: make one (its secret shown once), see yours with their last use, revoke them. */
export function ApiTokensSection() {
  const tokens = useApiTokens();
  const create = useCreateApiToken();
  const revoke = useRevokeApiToken();
  const [name, setName] = useState('');
  const [scope, setScope] = useState<'read' | 'full'>('read');
  const [days, setDays] = useState('30');
  const [error, setError] = useState<string | null>(null);
  const [created, setCreated] = useState<ApiTokenCreated | null>(null);

  const onSubmit = (e: FormEvent) => {
    e.preventDefault();
    if (create.isPending) return;
    if (!name.trim()) {
      setError('Give the token a name: what is it for?');
      return;
    }
    setError(null);
    create.mutate(
      { name: name.trim(), scope, expires_in_days: Number(days) },
      {
        onSuccess: (token) => {
          setCreated(token);
          setName('');
        },
        onError: (err) => setError(errorMessage(err)),
      },
    );
  };

  const confirmRevoke = useConfirmRevoke(revoke);

  return (
    <Paper withBorder p="lg" radius="md">
      <Stack>
        <Title order={3} size="h4" id="tokens-title">
          API tokens
        </Title>
        <Text size="sm" c="dimmed">
          For scripts and automation: send a token as <Code>Authorization: Bearer …</Code>. It acts as you; a read-only one may only read.
          Tokens cannot manage tokens, passwords or users.
        </Text>
        {created ? (
          <Alert color="yellow" title="Copy your new token now" icon={<IconAlertTriangle size={16} />}>
            <Stack gap="xs">
              <Text size="sm">It is shown only this once and cannot be displayed again.</Text>
              <Code block data-testid="new-api-token" style={{ wordBreak: 'break-all' }}>
                {created.token}
              </Code>
              <Group justify="flex-end">
                <CopyButton value={created.token}>
                  {({ copied, copy }) => (
                    <Button
                      leftSection={copied ? <IconCheck size={16} /> : <IconCopy size={16} />}
                      color={copied ? 'teal' : undefined}
                      onClick={copy}
                    >
                      {copied ? 'Copied' : 'Copy token'}
                    </Button>
                  )}
                </CopyButton>
                <Button variant="default" onClick={() => setCreated(null)}>
                  Done
                </Button>
              </Group>
            </Stack>
          </Alert>
        ) : (
          <form onSubmit={onSubmit} noValidate aria-labelledby="tokens-title">
            <Group align="flex-end" wrap="wrap">
              <TextInput label="Token name" placeholder="ci deploy" value={name} onChange={(e) => setName(e.currentTarget.value)} />
              <NativeSelect
                label="Scope"
                data={SCOPES}
                value={scope}
                onChange={(e) => setScope(e.currentTarget.value === 'full' ? 'full' : 'read')}
              />
              <NativeSelect
                label="Expires after"
                data={EXPIRY_DAYS.map((d) => ({ value: d, label: `${d} days` }))}
                value={days}
                onChange={(e) => setDays(e.currentTarget.value)}
              />
              <Button type="submit" loading={create.isPending}>
                Create token
              </Button>
            </Group>
          </form>
        )}
        {error && (
          <Alert color="red" icon={<IconAlertTriangle size={16} />} role="alert">
            {error}
          </Alert>
        )}
        <QueryContent
          query={tokens}
          errorTitle="Could not load your API tokens"
          isEmpty={(tokens.data ?? []).length === 0}
          empty={
            <Text size="sm" c="dimmed">
              No API tokens yet.
            </Text>
          }
        >
          <ApiTokensTable tokens={tokens.data ?? []} onRevoke={confirmRevoke} revoking={revoke.isPending ? revoke.variables : undefined} />
        </QueryContent>
      </Stack>
    </Paper>
  );
}
