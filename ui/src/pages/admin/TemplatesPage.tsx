import { Button, Group, Modal, Stack, Table, Text, Title } from '@mantine/core';
import { modals } from '@mantine/modals';
import { notifications } from '@mantine/notifications';
import { IconPencil, IconPlus, IconTrash } from '@tabler/icons-react';
import { useState } from 'react';
import { errorMessage } from '../../api/client';
import { useDeleteTemplate, useSaveTemplate, useTemplates } from '../../api/queries';
import type { Template } from '../../api/types';
import { DataTable } from '../../components/DataTable';
import { EmptyState, QueryContent } from '../../components/QueryState';

/** A template's limit as shown: empty = the agent's default, 0 = unlimited. */
function limit(value: number | null | undefined, unit: string): string {
  if (value === null || value === undefined) return `default${unit}`;
  return value === 0 ? `∞${unit}` : `${value}${unit}`;
}
import { TemplateIcon } from '../../components/TemplateIcon';
import { TemplateForm } from './TemplateForm';

type Editing = { mode: 'create' } | { mode: 'edit'; template: Template } | null;

const TEMPLATE_COLUMNS = ['App', 'Name', 'Category', 'Image', 'Limits', 'Actions'];

export function TemplatesPage() {
  const templates = useTemplates();
  const save = useSaveTemplate();
  const remove = useDeleteTemplate();
  const [editing, setEditing] = useState<Editing>(null);

  const confirmDelete = (t: Template) =>
    modals.openConfirmModal({
      title: `Delete ${t.display_name}?`,
      children: <Text size="sm">The template {t.name} is removed from the catalog. Running sessions are not affected.</Text>,
      labels: { confirm: 'Delete template', cancel: 'Cancel' },
      confirmProps: { color: 'red' },
      onConfirm: () =>
        remove.mutate(t.name, {
          onSuccess: () => notifications.show({ color: 'green', title: 'Template deleted', message: t.display_name }),
          onError: (err) => notifications.show({ color: 'red', title: `Could not delete ${t.display_name}`, message: errorMessage(err) }),
        }),
    });

  const list = [...(templates.data ?? [])].sort((a, b) => a.name.localeCompare(b.name));

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>Templates</Title>
        <Button leftSection={<IconPlus size={16} />} onClick={() => setEditing({ mode: 'create' })}>
          New template
        </Button>
      </Group>
      <QueryContent
        query={templates}
        errorTitle="Could not load templates"
        isEmpty={list.length === 0}
        empty={
          <EmptyState title="No templates yet">
            <Text size="sm" c="dimmed">
              Create one to put an app in the catalog.
            </Text>
          </EmptyState>
        }
      >
        <DataTable minWidth={800} columns={TEMPLATE_COLUMNS}>
          {list.map((t) => (
            <Table.Tr key={t.name} data-template-name={t.name}>
              <Table.Td>
                <Group gap="sm" wrap="nowrap">
                  <TemplateIcon icon={t.icon ?? ''} category={t.category ?? ''} size={28} />
                  <Text size="sm" fw={500}>
                    {t.display_name}
                  </Text>
                </Group>
              </Table.Td>
              <Table.Td>
                <Text size="sm" ff="monospace">
                  {t.name}
                </Text>
              </Table.Td>
              <Table.Td>{t.category}</Table.Td>
              <Table.Td>
                <Text size="sm" ff="monospace" lineClamp={1} title={t.image}>
                  {t.image}
                </Text>
              </Table.Td>
              <Table.Td>
                <Text size="xs">
                  {limit(t.cpu_limit, ' CPU')} · {limit(t.memory_limit_mb, ' MB')}
                  {t.egress === false ? ' · no internet' : ''} · idle {Math.round((t.idle_timeout_s ?? 1800) / 60)} min
                </Text>
              </Table.Td>
              <Table.Td>
                <Group gap="xs" wrap="nowrap">
                  <Button
                    size="xs"
                    variant="default"
                    leftSection={<IconPencil size={14} />}
                    onClick={() => setEditing({ mode: 'edit', template: t })}
                    aria-label={`Edit ${t.name}`}
                  >
                    Edit
                  </Button>
                  <Button
                    size="xs"
                    color="red"
                    variant="light"
                    leftSection={<IconTrash size={14} />}
                    onClick={() => confirmDelete(t)}
                    aria-label={`Delete ${t.name}`}
                  >
                    Delete
                  </Button>
                </Group>
              </Table.Td>
            </Table.Tr>
          ))}
        </DataTable>
      </QueryContent>

      <Modal
        opened={editing !== null}
        onClose={() => setEditing(null)}
        title={editing?.mode === 'edit' ? `Edit ${editing.template.display_name}` : 'New template'}
        size="lg"
      >
        {editing && (
          <TemplateForm
            template={editing.mode === 'edit' ? editing.template : undefined}
            onCancel={() => setEditing(null)}
            onSubmit={async (body) => {
              if (editing.mode === 'edit') {
                const { name: _name, ...changes } = body;
                await save.mutateAsync({ mode: 'edit', name: editing.template.name, body: changes });
              } else {
                await save.mutateAsync({ mode: 'create', body });
              }
              notifications.show({ color: 'green', title: 'Template saved', message: body.display_name });
              setEditing(null);
            }}
          />
        )}
      </Modal>
    </Stack>
  );
}
