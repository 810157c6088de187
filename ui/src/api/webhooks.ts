import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { api, unwrap } from './client';
import type { components } from './schema';

type Schemas = components['schemas'];

export type Webhook = Schemas['WebhookRead'];
export type WebhookCreated = Schemas['WebhookCreated'];
export type WebhookCreate = Schemas['WebhookCreate'];
export type WebhookDelivery = Schemas['WebhookDeliveryRead'];

export const webhookKeys = {
  all: ['webhooks'] as const,
  eventTypes: ['webhooks', 'event-types'] as const,
  deliveries: (id: string) => ['webhooks', id, 'deliveries'] as const,
};

export function useWebhooks() {
  return useQuery({
    queryKey: webhookKeys.all,
    queryFn: (): Promise<Webhook[]> => unwrap(api.GET('/api/v1/webhooks')),
  });
}

export function useWebhookEventTypes() {
  return useQuery({
    queryKey: webhookKeys.eventTypes,
    queryFn: (): Promise<string[]> => unwrap(api.GET('/api/v1/webhooks/event-types')),
    staleTime: Infinity,
  });
}

/** The delivery log, refreshed while it is open: deliveries change state in the background. */
export function useWebhookDeliveries(id: string) {
  return useQuery({
    queryKey: webhookKeys.deliveries(id),
    queryFn: (): Promise<WebhookDelivery[]> =>
      unwrap(api.GET('/api/v1/webhooks/{webhook_id}/deliveries', { params: { path: { webhook_id: id } } })),
    refetchInterval: 5000,
  });
}

export function useCreateWebhook() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (body: WebhookCreate): Promise<WebhookCreated> => unwrap(api.POST('/api/v1/webhooks', { body })),
    onSuccess: () => void qc.invalidateQueries({ queryKey: webhookKeys.all }),
  });
}

export function useUpdateWebhook() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: ({ id, enabled }: { id: string; enabled: boolean }): Promise<Webhook> =>
      unwrap(api.PATCH('/api/v1/webhooks/{webhook_id}', { params: { path: { webhook_id: id } }, body: { enabled } })),
    onSuccess: () => void qc.invalidateQueries({ queryKey: webhookKeys.all }),
  });
}

export function useDeleteWebhook() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: string): Promise<unknown> =>
      unwrap(api.DELETE('/api/v1/webhooks/{webhook_id}', { params: { path: { webhook_id: id } } })),
    onSuccess: () => void qc.invalidateQueries({ queryKey: webhookKeys.all }),
  });
}

export function useSendTestEvent() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (id: string): Promise<WebhookDelivery> =>
      unwrap(api.POST('/api/v1/webhooks/{webhook_id}/test', { params: { path: { webhook_id: id } } })),
    onSuccess: (d) => void qc.invalidateQueries({ queryKey: webhookKeys.deliveries(d.webhook_id) }),
  });
}

export function useRedeliver() {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (d: WebhookDelivery): Promise<WebhookDelivery> =>
      unwrap(
        api.POST('/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver', {
          params: { path: { webhook_id: d.webhook_id, delivery_id: d.id } },
        }),
      ),
    onSuccess: (d) => void qc.invalidateQueries({ queryKey: webhookKeys.deliveries(d.webhook_id) }),
  });
}
