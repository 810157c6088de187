import { Button, Group, Stack, Text, Title } from '@mantine/core';
import { Link, Outlet, useLocation } from 'react-router';
import { useMe } from '../../api/queries';

const SECTIONS = [
  { to: '/admin', label: 'Overview' },
  { to: '/admin/agents', label: 'Agents' },
  { to: '/admin/replicas', label: 'Replicas' },
  { to: '/admin/sessions', label: 'Sessions' },
  { to: '/admin/templates', label: 'Templates' },
  { to: '/admin/users', label: 'Users' },
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

  return (
    <Stack>
      <Group component="nav" aria-label="Admin sections" gap={4} wrap="wrap">
        {SECTIONS.map((s) => (
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
