import {
  Alert,
  Badge,
  Button,
  Card,
  CloseButton,
  Group,
  ScrollArea,
  SegmentedControl,
  SimpleGrid,
  Skeleton,
  Stack,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { IconAlertTriangle, IconPlayerPlay, IconSearch } from '@tabler/icons-react';
import { useMemo, useState } from 'react';
import { useNavigate } from 'react-router';
import { errorMessage } from '../api/client';
import { useQueryClient } from '@tanstack/react-query';
import { quotaKey } from '../api/quotas';
import { useLaunchSession, useTemplates } from '../api/queries';
import type { Template } from '../api/types';
import { EmptyState, ErrorState } from '../components/QueryState';
import { QuotaUsage } from '../components/QuotaUsage';
import { TemplateIcon } from '../components/TemplateIcon';

const ALL = 'All';

function matches(t: Template, q: string): boolean {
  if (!q) return true;
  return [t.display_name, t.name, t.description ?? '', t.category ?? ''].some((v) => v.toLowerCase().includes(q));
}

export function CatalogPage() {
  const templates = useTemplates();
  const launch = useLaunchSession();
  const navigate = useNavigate();
  const qc = useQueryClient();
  const [search, setSearch] = useState('');
  const [category, setCategory] = useState(ALL);
  const [launchError, setLaunchError] = useState<{ app: string; message: string } | null>(null);

  const categories = useMemo(() => {
    const set = new Set((templates.data ?? []).map((t) => t.category ?? 'General'));
    return [ALL, ...[...set].sort((a, b) => a.localeCompare(b))];
  }, [templates.data]);

  const visible = useMemo(() => {
    const q = search.trim().toLowerCase();
    return (templates.data ?? [])
      .filter((t) => category === ALL || (t.category ?? 'General') === category)
      .filter((t) => matches(t, q))
      .sort((a, b) => a.display_name.localeCompare(b.display_name));
  }, [templates.data, search, category]);

  const onLaunch = (t: Template) => {
    setLaunchError(null);
    launch.mutate(t.name, {
      onSuccess: (session) => void navigate(`/sessions/${encodeURIComponent(session.id)}`),
      onError: (err) => {
        setLaunchError({ app: t.display_name, message: errorMessage(err) });
        void qc.invalidateQueries({ queryKey: quotaKey }); // a refusal: show the usage as it is now
      },
    });
  };

  return (
    <Stack>
      <Title order={2}>Catalog</Title>
      <QuotaUsage />
      {launchError && (
        <Alert
          color="red"
          icon={<IconAlertTriangle size={18} />}
          title={`Could not launch ${launchError.app}`}
          withCloseButton
          closeButtonLabel="Dismiss"
          onClose={() => setLaunchError(null)}
        >
          {launchError.message}
        </Alert>
      )}
      <Group align="flex-end" wrap="wrap">
        <TextInput
          label="Search apps"
          placeholder="Name, description or category"
          leftSection={<IconSearch size={16} />}
          value={search}
          onChange={(e) => setSearch(e.currentTarget.value)}
          rightSection={search ? <CloseButton aria-label="Clear search" onClick={() => setSearch('')} /> : null}
          w={300}
        />
        {categories.length > 1 && (
          <ScrollArea type="auto" offsetScrollbars maw="100%">
            <SegmentedControl aria-label="Category" data={categories} value={category} onChange={setCategory} />
          </ScrollArea>
        )}
      </Group>

      {templates.isPending ? (
        <SimpleGrid cols={{ base: 1, sm: 2, md: 3, lg: 4 }} aria-busy="true" aria-label="Loading apps">
          {Array.from({ length: 8 }, (_, i) => (
            <Skeleton key={i} height={190} radius="md" />
          ))}
        </SimpleGrid>
      ) : templates.isError ? (
        <ErrorState error={templates.error} onRetry={() => void templates.refetch()} title="Could not load the catalog" />
      ) : visible.length === 0 ? (
        <EmptyState title={(templates.data ?? []).length === 0 ? 'No apps yet' : 'No apps match'}>
          {(search || category !== ALL) && (
            <Button
              variant="subtle"
              onClick={() => {
                setSearch('');
                setCategory(ALL);
              }}
            >
              Clear filters
            </Button>
          )}
        </EmptyState>
      ) : (
        <SimpleGrid cols={{ base: 1, sm: 2, md: 3, lg: 4 }}>
          {visible.map((t) => (
            <Card key={t.name} withBorder radius="md" padding="md" role="article" aria-label={t.display_name}>
              <Stack gap="sm" h="100%">
                <Group justify="space-between" align="flex-start" wrap="nowrap">
                  <TemplateIcon icon={t.icon ?? ''} category={t.category ?? ''} />
                  <Badge variant="light">{t.category ?? 'General'}</Badge>
                </Group>
                <Text fw={600} component="h3" m={0}>
                  {t.display_name}
                </Text>
                <Text size="sm" c="dimmed" lineClamp={3} style={{ flexGrow: 1 }}>
                  {t.description || 'No description'}
                </Text>
                <Button
                  leftSection={<IconPlayerPlay size={16} />}
                  onClick={() => onLaunch(t)}
                  aria-label={`Launch ${t.display_name}`}
                  loading={launch.isPending && launch.variables === t.name}
                  disabled={launch.isPending && launch.variables !== t.name}
                >
                  Launch
                </Button>
              </Stack>
            </Card>
          ))}
        </SimpleGrid>
      )}
    </Stack>
  );
}
