import { Alert, Button, Checkbox, Group, NumberInput, SimpleGrid, Stack, TextInput, Textarea } from '@mantine/core';
import { useForm } from '@mantine/form';
import { useState } from 'react';
import { errorMessage } from '../../api/client';
import type { Template, TemplateCreate } from '../../api/types';

export const NAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export interface TemplateValues {
  name: string;
  display_name: string;
  description: string;
  category: string;
  icon: string;
  image: string;
  vnc_port: number | string;
  cpu_limit: number | string;
  memory_limit_mb: number | string;
  idle_timeout_s: number | string;
  max_duration_s: number | string;
  persistent_home: boolean;
  egress: boolean;
  env: string;
}

export function initialValues(t?: Template): TemplateValues {
  return {
    name: t?.name ?? '',
    display_name: t?.display_name ?? '',
    description: t?.description ?? '',
    category: t?.category ?? 'General',
    icon: t?.icon ?? '',
    image: t?.image ?? '',
    vnc_port: t?.vnc_port ?? 5900,
    cpu_limit: t?.cpu_limit ?? '',
    memory_limit_mb: t?.memory_limit_mb ?? '',
    idle_timeout_s: t?.idle_timeout_s ?? 1800,
    max_duration_s: t?.max_duration_s ?? 28800,
    persistent_home: t?.persistent_home ?? true,
    egress: t?.egress ?? true,
    env: Object.entries(t?.env ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join('\n'),
  };
}

const blank = (v: number | string) => v === '' || v === null || v === undefined;

function intIn(label: string, min: number, max: number, optional = false) {
  return (v: number | string) => {
    if (blank(v)) return optional ? null : `${label} is required`;
    const n = Number(v);
    if (!Number.isInteger(n)) return `${label} must be a whole number`;
    if (n < min || n > max) return `${label} must be between ${min} and ${max}`;
    return null;
  };
}

function parseEnv(text: string): { env: Record<string, string>; error: string | null } {
  const env: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) return { env, error: `"${line}" is not KEY=VALUE` };
    env[line.slice(0, eq).trim()] = line.slice(eq + 1);
  }
  if (Object.keys(env).length > 100) return { env, error: 'At most 100 variables' };
  return { env, error: null };
}

export const validators = {
  name: (v: string) =>
    !v
      ? 'Name is required'
      : v.length > 63
        ? 'Name must be at most 63 characters'
        : NAME_PATTERN.test(v)
          ? null
          : 'Lowercase letters, digits and dashes; must start and end with a letter or digit',
  display_name: (v: string) => (!v.trim() ? 'Display name is required' : v.length > 100 ? 'At most 100 characters' : null),
  description: (v: string) => (v.length > 2000 ? 'At most 2000 characters' : null),
  category: (v: string) => (!v.trim() ? 'Category is required' : v.length > 50 ? 'At most 50 characters' : null),
  icon: (v: string) => (v.length > 255 ? 'At most 255 characters' : null),
  image: (v: string) =>
    !v ? 'Image is required' : /\s/.test(v) ? 'Image must not contain spaces' : v.length > 255 ? 'At most 255 characters' : null,
  vnc_port: intIn('VNC port', 1, 65535),
  cpu_limit: (v: number | string) => {
    if (blank(v)) return null;
    const n = Number(v);
    return Number.isFinite(n) && n >= 0 && n <= 256 ? null : 'CPU limit must be between 0 (unlimited) and 256';
  },
  memory_limit_mb: (v: number | string) => {
    if (blank(v) || Number(v) === 0) return null;
    return intIn('Memory limit', 64, 1048576)(v);
  },
  idle_timeout_s: intIn('Idle timeout', 60, 604800),
  max_duration_s: intIn('Max duration', 60, 2592000),
  env: (v: string) => parseEnv(v).error,
};

export function toBody(v: TemplateValues): TemplateCreate {
  return {
    name: v.name,
    display_name: v.display_name.trim(),
    description: v.description,
    category: v.category.trim(),
    icon: v.icon.trim(),
    image: v.image.trim(),
    vnc_port: Number(v.vnc_port),
    cpu_limit: blank(v.cpu_limit) ? null : Number(v.cpu_limit),
    memory_limit_mb: blank(v.memory_limit_mb) ? null : Number(v.memory_limit_mb),
    idle_timeout_s: Number(v.idle_timeout_s),
    max_duration_s: Number(v.max_duration_s),
    persistent_home: v.persistent_home,
    egress: v.egress,
    env: parseEnv(v.env).env,
  };
}

interface Props {
  template?: Template;
  onSubmit: (body: TemplateCreate) => Promise<unknown>;
  onCancel: () => void;
}

export function TemplateForm({ template, onSubmit, onCancel }: Props) {
  const editing = Boolean(template);
  const form = useForm<TemplateValues>({ initialValues: initialValues(template), validate: validators, validateInputOnBlur: true });
  const [serverError, setServerError] = useState<string | null>(null);
  const [saving, setSaving] = useState(false);

  const submit = form.onSubmit(async (values) => {
    setServerError(null);
    setSaving(true);
    try {
      await onSubmit(toBody(values));
    } catch (err) {
      setServerError(errorMessage(err));
    } finally {
      setSaving(false);
    }
  });

  return (
    <form onSubmit={submit} noValidate>
      <Stack>
        {serverError && (
          <Alert color="red" role="alert" title="Could not save the template">
            {serverError}
          </Alert>
        )}
        <SimpleGrid cols={{ base: 1, sm: 2 }}>
          <TextInput label="Name" disabled={editing} description="Used in URLs and the API" {...form.getInputProps('name')} />
          <TextInput label="Display name" {...form.getInputProps('display_name')} />
          <TextInput label="Category" {...form.getInputProps('category')} />
          <TextInput label="Icon" description='A name like "terminal" or an image URL' {...form.getInputProps('icon')} />
        </SimpleGrid>
        <Textarea label="Description" autosize minRows={2} maxRows={5} {...form.getInputProps('description')} />
        <TextInput label="Image" description="Container image" {...form.getInputProps('image')} />
        <SimpleGrid cols={{ base: 1, sm: 3 }}>
          <NumberInput clampBehavior="none" label="VNC port" min={1} max={65535} allowDecimal={false} {...form.getInputProps('vnc_port')} />
          <NumberInput
            clampBehavior="none"
            label="CPU limit"
            min={0}
            max={256}
            decimalScale={2}
            placeholder="Agent default"
            description="Cores; 0 = unlimited, if the agent allows it"
            {...form.getInputProps('cpu_limit')}
          />
          <NumberInput
            clampBehavior="none"
            label="Memory limit (MB)"
            min={0}
            max={1048576}
            allowDecimal={false}
            placeholder="Agent default"
            description="0 = unlimited, if the agent allows it"
            {...form.getInputProps('memory_limit_mb')}
          />
          <NumberInput
            clampBehavior="none"
            label="Idle timeout (s)"
            min={60}
            max={604800}
            allowDecimal={false}
            {...form.getInputProps('idle_timeout_s')}
          />
          <NumberInput
            clampBehavior="none"
            label="Max duration (s)"
            min={60}
            max={2592000}
            allowDecimal={false}
            {...form.getInputProps('max_duration_s')}
          />
        </SimpleGrid>
        <Textarea
          label="Environment"
          description="One KEY=VALUE per line"
          autosize
          minRows={2}
          maxRows={6}
          ff="monospace"
          {...form.getInputProps('env')}
        />
        <Checkbox label="Persistent home" {...form.getInputProps('persistent_home', { type: 'checkbox' })} />
        <Checkbox
          label="Internet access"
          description="Sessions may connect to the internet; never to the agent's host or private networks"
          {...form.getInputProps('egress', { type: 'checkbox' })}
        />
        <Group justify="flex-end">
          <Button variant="default" onClick={onCancel}>
            Cancel
          </Button>
          <Button type="submit" loading={saving}>
            Save
          </Button>
        </Group>
      </Stack>
    </form>
  );
}
