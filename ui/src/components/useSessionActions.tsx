import { Text } from '@mantine/core';
import { modals } from '@mantine/modals';
import { notifications } from '@mantine/notifications';
import { useCallback } from 'react';
import { errorMessage } from '../api/client';
import { useSessionAction, type SessionAction } from '../api/queries';
import type { Session } from '../api/types';

const DONE: Record<SessionAction, string> = {
  hibernate: 'Hibernating',
  resume: 'Resuming',
  terminate: 'Terminating',
};

/** Hibernate / resume / terminate (with confirmation), reporting the outcome as notifications. */
export function useSessionActions() {
  const mutation = useSessionAction();

  const run = useCallback(
    (session: Pick<Session, 'id' | 'template'>, action: SessionAction) => {
      mutation.mutate(
        { id: session.id, action },
        {
          onSuccess: () =>
            notifications.show({ color: 'green', title: `${DONE[action]} ${session.template}`, message: `Session ${session.id}` }),
          onError: (err) =>
            notifications.show({ color: 'red', title: `Could not ${action} ${session.template}`, message: errorMessage(err) }),
        },
      );
    },
    [mutation],
  );

  const confirmTerminate = useCallback(
    (session: Pick<Session, 'id' | 'template'>, onDone?: () => void) => {
      modals.openConfirmModal({
        title: 'Terminate session?',
        children: (
          <Text size="sm">The {session.template} session will be stopped and anything not saved in its persistent home is lost.</Text>
        ),
        labels: { confirm: 'Terminate session', cancel: 'Cancel' },
        confirmProps: { color: 'red' },
        onConfirm: () => {
          run(session, 'terminate');
          onDone?.();
        },
      });
    },
    [run],
  );

  return { run, confirmTerminate, pending: mutation.isPending ? mutation.variables : undefined };
}
