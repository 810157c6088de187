import { Button, Group, Stack, Text, Title } from '@mantine/core';
import { Link, Navigate, Outlet, useLocation } from 'react-router';
import { useMe } from '../../api/queries';

// `platform`: the platform's (agents, replicas, the cluster-wide overview), shown to platform
// admins only; an org's admin manages their org's sessions, templates and users.
const SECTIONS = [
  { to: '/admin', label: 'Overview', platform: true },
  { to: '/admin/agents', label: 'Agents', platform: true },
  { to: '/admin/replicas', label: 'Replicas', platform: true },
  { to: '/admin/sessions', label: 'Sessions', platform: false },
  { to: '/admin/templates', label: 'Templates', platform: false },
  { to: '/admin/users', label: 'Users', platform: false },
  { to: '/admin/tokens', label: 'API tokens', platform: false },
  { to: '/admin/audit', label: 'Audit', platform: false },
  { to: '/admin/webhooks', label: 'Webhooks', platform: false },
];

/** The admin console; for anyone else a notice, and none of the admin data is requested. */
export function AdminLayout() {
  const me = useMe();
  const { pathname } = useLocation();

  if (me.data?.role !== 'admin') {
    return (
      <Stack align="flex-start">
        <Title order={2}>Admins only</Title>
        <Text c="dimmed">This part of StreamSpace is for administrators of your organisation.</Text>
        <Button component={Link} to="/" variant="light">
          Back to the catalog
        </Button>
      </Stack>
    );
  }

  const current = (to: string) => (to === '/admin' ? pathname === '/admin' || pathname === '/admin/' : pathname.startsWith(to));
  const platform = me.data.platform_admin === true;
  const sections = SECTIONS.filter((s) => platform || !s.platform);
  if (!platform && SECTIONS.some((s) => s.platform && current(s.to))) {
    return <Navigate to="/admin/sessions" replace />;
  }

  return (
    <Stack>
      <Group component="nav" aria-label="Admin sections" gap={4} wrap="wrap">
        {sections.map((s) => (
          <Button
            key={s.to}
            component={Link}
            to={s.to}
            variant={current(s.to) ? 'light' : 'subtle'}
            aria-current={current(s.to) ? 'page' : undefined}
            size="sm"
          >
            {s.label}
          </Button>
        ))}
      </Group>
      <Outlet />
    </Stack>
  );
}
