import { AppShell, Burger, Button, Center, Group, Loader, NavLink, Text, Title } from '@mantine/core';
import { useDisclosure } from '@mantine/hooks';
import { IconApps, IconDeviceDesktop, IconLogout, IconSettings, IconUser } from '@tabler/icons-react';
import { Link, Navigate, Outlet, useLocation } from 'react-router';
import { useMe } from '../api/queries';
import { useAuth } from '../auth/AuthContext';
import { EventsProvider } from '../auth/EventsContext';
import { ColorSchemeToggle } from './ColorSchemeToggle';
import { LiveIndicator } from './LiveIndicator';
import { ErrorState } from './QueryState';

/** Every signed-in page: redirects to /login (remembering where to come back) without a token. */
export function RequireAuth() {
  const { token } = useAuth();
  const location = useLocation();
  if (!token) {
    return <Navigate to="/login" replace state={{ from: `${location.pathname}${location.search}${location.hash}` }} />;
  }
  return (
    <EventsProvider>
      <Shell />
    </EventsProvider>
  );
}

function Shell() {
  const [opened, { toggle, close }] = useDisclosure();
  const { logout } = useAuth();
  const me = useMe();
  const { pathname } = useLocation();

  const links = [
    { to: '/', label: 'Catalog', icon: IconApps, active: pathname === '/' },
    { to: '/sessions', label: 'My sessions', icon: IconDeviceDesktop, active: pathname.startsWith('/sessions') },
    { to: '/account', label: 'Account', icon: IconUser, active: pathname === '/account' },
    ...(me.data?.role === 'admin' ? [{ to: '/admin', label: 'Admin', icon: IconSettings, active: pathname.startsWith('/admin') }] : []),
  ];

  return (
    <AppShell header={{ height: 56 }} navbar={{ width: 220, breakpoint: 'sm', collapsed: { mobile: !opened } }} padding="md">
      <AppShell.Header>
        <Group h="100%" px="md" justify="space-between" wrap="nowrap">
          <Group gap="sm" wrap="nowrap">
            <Burger opened={opened} onClick={toggle} hiddenFrom="sm" size="sm" aria-label="Toggle navigation" />
            <Title order={1} size="h4">
              <Text component={Link} to="/" inherit c="inherit" td="none">
                StreamSpace
              </Text>
            </Title>
          </Group>
          <Group gap="sm" wrap="nowrap">
            <LiveIndicator />
            {me.data && (
              <Group gap={4} wrap="nowrap" visibleFrom="xs">
                <IconUser size={16} aria-hidden />
                <Text size="sm" data-testid="current-user">
                  {me.data.username}
                </Text>
              </Group>
            )}
            <ColorSchemeToggle />
            <Button variant="default" leftSection={<IconLogout size={16} />} onClick={() => void logout()}>
              Log out
            </Button>
          </Group>
        </Group>
      </AppShell.Header>
      <AppShell.Navbar p="xs" aria-label="Main navigation" component="nav">
        {links.map((l) => (
          <NavLink
            key={l.to}
            component={Link}
            to={l.to}
            label={l.label}
            active={l.active}
            aria-current={l.active ? 'page' : undefined}
            leftSection={<l.icon size={18} stroke={1.6} />}
            onClick={close}
          />
        ))}
      </AppShell.Navbar>
      <AppShell.Main>
        {me.isPending ? (
          <Center h={200}>
            <Loader aria-label="Loading your account" />
          </Center>
        ) : me.isError ? (
          <ErrorState error={me.error} onRetry={() => void me.refetch()} title="Could not load your account" />
        ) : (
          <Outlet />
        )}
      </AppShell.Main>
    </AppShell>
  );
}
