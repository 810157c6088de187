import { Alert, Anchor, Box, Button, Card, Center, Group, Loader, Paper, Stack, Stepper, Text, Title } from '@mantine/core';
import {
  IconAlertTriangle,
  IconExternalLink,
  IconMaximize,
  IconPlayerPause,
  IconPlayerPlay,
  IconTrash,
  IconZzz,
} from '@tabler/icons-react';
import { useRef } from 'react';
import { Link, useParams } from 'react-router';
import { ApiError } from '../api/client';
import { useSession, useTemplates } from '../api/queries';
import { useLiveEvents } from '../auth/EventsContext';
import { ErrorState } from '../components/QueryState';
import { RelativeTime } from '../components/RelativeTime';
import { StateBadge } from '../components/StateBadge';
import { useSessionActions } from '../components/useSessionActions';
import { isEnded, isTransitional, sessionActions, showsDesktop, viewerUrl } from '../lib/sessions';

const STEPS = ['pending', 'starting', 'running'] as const;

export function SessionPage() {
  const { id = '' } = useParams();
  const live = useLiveEvents();
  const session = useSession(id, (s) => {
    if (s && isEnded(s.state)) return false;
    // The events socket pushes changes; polling is the fallback (and a safety net while launching).
    if (live.status !== 'live') return 3_000;
    return s && isTransitional(s.state) ? 5_000 : 30_000;
  });
  const templates = useTemplates();
  const { run, confirmTerminate, pending } = useSessionActions();
  const frameBox = useRef<HTMLDivElement>(null);

  if (session.isPending) {
    return (
      <Center h={300}>
        <Loader aria-label="Loading session" />
      </Center>
    );
  }
  if (session.isError) {
    if (session.error instanceof ApiError && (session.error.status === 404 || session.error.status === 403)) {
      return (
        <Stack align="flex-start">
          <Title order={2}>Session not found</Title>
          <Text c="dimmed">It may have been removed, or it belongs to someone else.</Text>
          <Anchor component={Link} to="/sessions">
            Back to my sessions
          </Anchor>
        </Stack>
      );
    }
    return <ErrorState error={session.error} onRetry={() => void session.refetch()} title="Could not load the session" />;
  }

  const s = session.data;
  const appName = templates.data?.find((t) => t.name === s.template)?.display_name ?? s.template;
  const can = sessionActions(s.state);
  const desktop = showsDesktop(s.state);
  const hibernated = s.state === 'hibernated';
  const launching = s.state === 'pending' || s.state === 'starting';
  const stepIndex = STEPS.indexOf(s.state as (typeof STEPS)[number]);
  const busy = pending?.id === s.id ? pending.action : undefined;

  const fullscreen = () => {
    const el = frameBox.current;
    if (el?.requestFullscreen) void el.requestFullscreen().catch(() => undefined);
  };

  return (
    <Stack gap="sm" h="calc(100dvh - 56px - 2 * var(--mantine-spacing-md))">
      <Group justify="space-between" align="center" wrap="wrap" gap="sm">
        <Group gap="sm" align="center">
          <Title order={2}>{appName}</Title>
          <StateBadge state={s.state} size="lg" data-testid="session-state" />
          <Text size="sm" c="dimmed">
            started <RelativeTime iso={s.created_at} />
          </Text>
        </Group>
        <Group gap="xs">
          {can.hibernate && (
            <Button
              variant="default"
              leftSection={<IconPlayerPause size={16} />}
              loading={busy === 'hibernate'}
              onClick={() => run(s, 'hibernate')}
            >
              Hibernate
            </Button>
          )}
          {can.resume && !hibernated && (
            <Button
              variant="default"
              leftSection={<IconPlayerPlay size={16} />}
              loading={busy === 'resume'}
              onClick={() => run(s, 'resume')}
            >
              Resume
            </Button>
          )}
          {desktop && (
            <>
              <Button variant="default" leftSection={<IconMaximize size={16} />} onClick={fullscreen}>
                Fullscreen
              </Button>
              <Button
                component="a"
                href={viewerUrl(s.id)}
                target="_blank"
                rel="noopener"
                variant="default"
                leftSection={<IconExternalLink size={16} />}
              >
                Open in new tab
              </Button>
            </>
          )}
          {can.terminate && (
            <Button
              color="red"
              variant="light"
              leftSection={<IconTrash size={16} />}
              loading={busy === 'terminate'}
              onClick={() => confirmTerminate(s)}
            >
              Terminate
            </Button>
          )}
        </Group>
      </Group>

      {s.state_reason && (
        <Text size="sm" c={s.state === 'failed' ? 'red' : 'dimmed'} data-testid="session-reason">
          {s.state_reason}
        </Text>
      )}

      {launching && (
        <Paper withBorder p="md" radius="md">
          <Stepper active={stepIndex} size="sm" aria-label="Launch progress">
            <Stepper.Step label="Pending" description="Waiting for an agent" loading={s.state === 'pending'} />
            <Stepper.Step label="Starting" description="Starting the container" loading={s.state === 'starting'} />
            <Stepper.Step label="Running" description="Ready to use" />
          </Stepper>
        </Paper>
      )}

      {s.state === 'failed' && (
        <Alert color="red" icon={<IconAlertTriangle size={18} />} title="This session failed">
          {s.state_reason || 'No reason was given.'}{' '}
          <Anchor component={Link} to="/">
            Launch it again from the catalog
          </Anchor>
        </Alert>
      )}

      {(s.state === 'terminated' || s.state === 'terminating') && (
        <Card withBorder>
          <Text>{s.state === 'terminated' ? 'This session has ended.' : 'This session is shutting down.'}</Text>
          <Anchor component={Link} to="/sessions">
            Back to my sessions
          </Anchor>
        </Card>
      )}

      {(hibernated || s.state === 'hibernating') && (
        <Card withBorder padding="lg">
          <Group>
            <IconZzz size={28} aria-hidden />
            <Stack gap={4} style={{ flex: 1 }}>
              <Text fw={600}>{hibernated ? 'This session is hibernated' : 'This session is hibernating…'}</Text>
              <Text size="sm" c="dimmed">
                Its desktop is saved; resume it to continue where you left off.
              </Text>
            </Stack>
            {hibernated && (
              <Button leftSection={<IconPlayerPlay size={16} />} loading={busy === 'resume'} onClick={() => run(s, 'resume')}>
                Resume
              </Button>
            )}
          </Group>
        </Card>
      )}

      {desktop && (
        <Box ref={frameBox} style={{ flex: 1, minHeight: 360, borderRadius: 8, overflow: 'hidden' }} bg="black">
          <iframe
            title="Session desktop"
            src={viewerUrl(s.id)}
            style={{ width: '100%', height: '100%', border: 0, display: 'block' }}
            allow="clipboard-read; clipboard-write; fullscreen"
            allowFullScreen
          />
        </Box>
      )}
    </Stack>
  );
}
