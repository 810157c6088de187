import { Alert, Button, Code, CopyButton, Group, SimpleGrid, Stack, Text } from '@mantine/core';
import { IconCheck, IconCopy } from '@tabler/icons-react';

/** One-time recovery codes, shown once: each signs in once in place of a code from the app. */
export function RecoveryCodes({
  codes,
  onDone,
  doneLabel = 'I have saved them',
}: {
  codes: string[];
  onDone: () => void;
  doneLabel?: string;
}) {
  return (
    <Stack gap="sm" aria-label="Recovery codes">
      <Alert color="yellow" title="Save your recovery codes">
        They are shown only now. Each one signs you in once if you lose your phone; keep them somewhere safe, apart from it.
      </Alert>
      <SimpleGrid cols={2} spacing="xs" data-testid="recovery-codes">
        {codes.map((c) => (
          <Code key={c} fz="sm">
            {c}
          </Code>
        ))}
      </SimpleGrid>
      <Group justify="space-between">
        <CopyButton value={codes.join('\n')}>
          {({ copied, copy }) => (
            <Button variant="default" leftSection={copied ? <IconCheck size={16} /> : <IconCopy size={16} />} onClick={copy}>
              {copied ? 'Copied' : 'Copy codes'}
            </Button>
          )}
        </CopyButton>
        <Button onClick={onDone}>{doneLabel}</Button>
      </Group>
      <Text size="xs" c="dimmed">
        {codes.length} codes
      </Text>
    </Stack>
  );
}

/** The QR code to scan (an SVG image made by the server) and the secret to type by hand. */
export function EnrolmentQr({ qr, secret }: { qr: string; secret: string }) {
  return (
    <Stack gap="xs" align="center">
      <img src={qr} alt="QR code for your authenticator app" width={200} height={200} />
      <Text size="xs" c="dimmed" ta="center">
        Can&apos;t scan it? Enter this key in the app: <Code data-testid="mfa-secret">{secret}</Code>
      </Text>
    </Stack>
  );
}
