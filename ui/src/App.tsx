import { Anchor, Stack, Text, Title } from '@mantine/core';
import { Link, Route, Routes } from 'react-router';
import { RequireAuth } from './components/Layout';
import { AdminLayout } from './pages/admin/AdminLayout';
import { AdminSessionsPage } from './pages/admin/AdminSessionsPage';
import { AgentsPage } from './pages/admin/AgentsPage';
import { OverviewPage } from './pages/admin/OverviewPage';
import { ReplicasPage } from './pages/admin/ReplicasPage';
import { TemplatesPage } from './pages/admin/TemplatesPage';
import { UsersPage } from './pages/admin/UsersPage';
import { CatalogPage } from './pages/CatalogPage';
import { LoginPage } from './pages/LoginPage';
import { MySessionsPage } from './pages/MySessionsPage';
import { SessionPage } from './pages/SessionPage';

function NotFound() {
  return (
    <Stack align="flex-start">
      <Title order={2}>Page not found</Title>
      <Text c="dimmed">There is nothing at this address.</Text>
      <Anchor component={Link} to="/">
        Go to the catalog
      </Anchor>
    </Stack>
  );
}

export function AppRoutes() {
  return (
    <Routes>
      <Route path="/login" element={<LoginPage />} />
      <Route element={<RequireAuth />}>
        <Route index element={<CatalogPage />} />
        <Route path="sessions" element={<MySessionsPage />} />
        <Route path="sessions/:id" element={<SessionPage />} />
        <Route path="admin" element={<AdminLayout />}>
          <Route index element={<OverviewPage />} />
          <Route path="agents" element={<AgentsPage />} />
          <Route path="replicas" element={<ReplicasPage />} />
          <Route path="sessions" element={<AdminSessionsPage />} />
          <Route path="templates" element={<TemplatesPage />} />
          <Route path="users" element={<UsersPage />} />
          <Route path="*" element={<NotFound />} />
        </Route>
        <Route path="*" element={<NotFound />} />
      </Route>
    </Routes>
  );
}
