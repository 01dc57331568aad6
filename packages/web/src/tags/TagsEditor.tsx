import { ActionIcon, Badge, Button, Group, TextInput } from '@mantine/core';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { api } from '../api/client.ts';
import { ErrorNotice } from '../ui/QueryState.tsx';

type Owner = { kind: 'fleet'; fleetId: number } | { kind: 'device'; device: string };

/** Key/value tags of a fleet or a device: shown as badges, added as `key` or `key=value`, removed one by one. */
export function TagsEditor({
  owner,
  tags,
  canWrite,
}: {
  owner: Owner;
  tags: Record<string, string>;
  canWrite: boolean;
}) {
  const queryClient = useQueryClient();
  const [text, setText] = useState('');
  const refresh = () =>
    queryClient.invalidateQueries({ queryKey: owner.kind === 'fleet' ? ['fleet'] : ['device'] });
  const put = useMutation({
    mutationFn: async ({ key, value }: { key: string; value: string }) => {
      if (owner.kind === 'fleet') {
        await api.PUT('/api/v1/fleets/{fleetId}/tags/{key}', {
          params: { path: { fleetId: owner.fleetId, key } },
          body: { value },
        });
      } else {
        await api.PUT('/api/v1/devices/{device}/tags/{key}', {
          params: { path: { device: owner.device, key } },
          body: { value },
        });
      }
    },
    onSuccess: async () => {
      setText('');
      await refresh();
    },
  });
  const remove = useMutation({
    mutationFn: async (key: string) => {
      if (owner.kind === 'fleet') {
        await api.DELETE('/api/v1/fleets/{fleetId}/tags/{key}', {
          params: { path: { fleetId: owner.fleetId, key } },
        });
      } else {
        await api.DELETE('/api/v1/devices/{device}/tags/{key}', {
          params: { path: { device: owner.device, key } },
        });
      }
    },
    onSuccess: refresh,
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    const eq = text.indexOf('=');
    const key = (eq < 0 ? text : text.slice(0, eq)).trim();
    if (key) put.mutate({ key, value: eq < 0 ? '' : text.slice(eq + 1).trim() });
  };
  const entries = Object.entries(tags);
  return (
    <>
      <Group gap="xs">
        {entries.length === 0 && (
          <Badge variant="dot" color="gray">
            no tags
          </Badge>
        )}
        {entries.map(([key, value]) => (
          <Badge
            key={key}
            variant="dot"
            rightSection={
              canWrite ? (
                <ActionIcon
                  size="xs"
                  variant="transparent"
                  aria-label={`Remove tag ${key}`}
                  onClick={() => remove.mutate(key)}
                >
                  ✕
                </ActionIcon>
              ) : undefined
            }
          >
            {value ? `${key}=${value}` : key}
          </Badge>
        ))}
      </Group>
      {canWrite && (
        <form onSubmit={submit}>
          <Group align="flex-end" mt="xs">
            <TextInput
              label="Add a tag"
              placeholder="key or key=value"
              value={text}
              onChange={(e) => setText(e.currentTarget.value)}
            />
            <Button type="submit" variant="light" loading={put.isPending}>
              Add tag
            </Button>
          </Group>
        </form>
      )}
      {(put.isError || remove.isError) && <ErrorNotice error={put.error ?? remove.error} />}
    </>
  );
}
