import { Alert, Center, Loader, Stack, Text } from '@mantine/core';
import type { UseQueryResult } from '@tanstack/react-query';
import type { ReactNode } from 'react';
import { ApiError } from '../api/client.ts';

/** An API error as the person should read it: the server's own message, and what kind of refusal it was. */
export function ErrorNotice({ error, title }: { error: unknown; title?: string }) {
  const heading =
    title ??
    (error instanceof ApiError
      ? error.status === 403
        ? 'Not allowed'
        : error.status === 404
          ? 'Not found'
          : error.status === 429
            ? 'Too many attempts'
            : 'Request failed'
      : 'Something went wrong');
  return (
    <Alert color="red" title={heading} role="alert">
      {error instanceof Error ? error.message : String(error)}
    </Alert>
  );
}

/**
 * Loading, error and empty states, handled once for every kind of view: `children` renders only with data, and
 * `empty` (what to do next) when `isEmpty` says there is nothing to show.
 */
export function QueryState<T>({
  query,
  isEmpty,
  empty,
  children,
}: {
  query: UseQueryResult<T>;
  isEmpty?: (data: T) => boolean;
  empty?: ReactNode;
  children: (data: T) => ReactNode;
}) {
  if (query.isPending) {
    return (
      <Center py="xl">
        <Loader aria-label="Loading" />
      </Center>
    );
  }
  if (query.isError) return <ErrorNotice error={query.error} />;
  if (isEmpty?.(query.data) && empty) return <EmptyState>{empty}</EmptyState>;
  return <>{children(query.data)}</>;
}

export function EmptyState({ children }: { children: ReactNode }) {
  return (
    <Stack align="center" py="xl" gap="xs" c="dimmed">
      {typeof children === 'string' ? <Text>{children}</Text> : children}
    </Stack>
  );
}
