import { Anchor, Center, Loader, Stack, Text, Title } from '@mantine/core';
import { lazy, Suspense, type ReactNode } from 'react';
import { Link, Route, Routes } from 'react-router';
import { RequireAuth } from './components/Layout';
import { AccountPage } from './pages/AccountPage';
import { AdminLayout } from './pages/admin/AdminLayout';
import { CatalogPage } from './pages/CatalogPage';
import { LoginPage } from './pages/LoginPage';
import { MySessionsPage } from './pages/MySessionsPage';
import { SessionPage } from './pages/SessionPage';
import { SsoCallbackPage } from './pages/SsoCallbackPage';

// The admin pages (and the charts library) load only when an admin opens them.
const OverviewPage = lazy(() => import('./pages/admin/OverviewPage').then((m) => ({ default: m.OverviewPage })));
const AgentsPage = lazy(() => import('./pages/admin/AgentsPage').then((m) => ({ default: m.AgentsPage })));
const ReplicasPage = lazy(() => import('./pages/admin/ReplicasPage').then((m) => ({ default: m.ReplicasPage })));
const AdminSessionsPage = lazy(() => import('./pages/admin/AdminSessionsPage').then((m) => ({ default: m.AdminSessionsPage })));
const TemplatesPage = lazy(() => import('./pages/admin/TemplatesPage').then((m) => ({ default: m.TemplatesPage })));
const UsersPage = lazy(() => import('./pages/admin/UsersPage').then((m) => ({ default: m.UsersPage })));
const ApiTokensPage = lazy(() => import('./pages/admin/ApiTokensPage').then((m) => ({ default: m.ApiTokensPage })));
const AuditPage = lazy(() => import('./pages/admin/AuditPage').then((m) => ({ default: m.AuditPage })));
const WebhooksPage = lazy(() => import('./pages/admin/WebhooksPage').then((m) => ({ default: m.WebhooksPage })));

function Lazy({ children }: { children: ReactNode }) {
  return (
    <Suspense
      fallback={
        <Center h={200}>
          <Loader aria-label="Loading page" />
        </Center>
      }
    >
      {children}
    </Suspense>
  );
}

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
      <Route path="/auth/callback" element={<SsoCallbackPage />} />
      <Route element={<RequireAuth />}>
        <Route index element={<CatalogPage />} />
        <Route path="sessions" element={<MySessionsPage />} />
        <Route path="sessions/:id" element={<SessionPage />} />
        <Route path="account" element={<AccountPage />} />
        <Route path="admin" element={<AdminLayout />}>
          <Route
            index
            element={
              <Lazy>
                <OverviewPage />
              </Lazy>
            }
          />
          <Route
            path="agents"
            element={
              <Lazy>
                <AgentsPage />
              </Lazy>
            }
          />
          <Route
            path="replicas"
            element={
              <Lazy>
                <ReplicasPage />
              </Lazy>
            }
          />
          <Route
            path="sessions"
            element={
              <Lazy>
                <AdminSessionsPage />
              </Lazy>
            }
          />
          <Route
            path="templates"
            element={
              <Lazy>
                <TemplatesPage />
              </Lazy>
            }
          />
          <Route
            path="users"
            element={
              <Lazy>
                <UsersPage />
              </Lazy>
            }
          />
          <Route
            path="tokens"
            element={
              <Lazy>
                <ApiTokensPage />
              </Lazy>
            }
          />
          <Route
            path="audit"
            element={
              <Lazy>
                <AuditPage />
              </Lazy>
            }
          />
          <Route
            path="webhooks"
            element={
              <Lazy>
                <WebhooksPage />
              </Lazy>
            }
          />
          <Route path="*" element={<NotFound />} />
        </Route>
        <Route path="*" element={<NotFound />} />
      </Route>
    </Routes>
  );
}
