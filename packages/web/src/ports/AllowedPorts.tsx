import { Badge, Button, Group, Text, TextInput } from '@mantine/core';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { api, data } from '../api/client.ts';
import { ErrorNotice, QueryState } from '../ui/QueryState.tsx';

type Owner = { kind: 'fleet'; fleetId: number } | { kind: 'device'; device: string };

const sources = {
  device: "the device's own list",
  fleet: "its fleet's list",
  default: 'the default (SSH only)',
} as const;

/**
 * The ports people may reach through fleetgate (port forwarding, the CONNECT proxy, device web pages): a
 * device's own list, else its fleet's, else port 22. Changing it needs `ports.manage`.
 */
export function AllowedPorts({ owner, canManage }: { owner: Owner; canManage: boolean }) {
  const queryClient = useQueryClient();
  const key = ['allowed-ports', owner];
  const ports = useQuery({
    queryKey: key,
    queryFn: async () =>
      owner.kind === 'fleet'
        ? data(
            await api.GET('/api/v1/fleets/{fleetId}/allowed-ports', {
              params: { path: { fleetId: owner.fleetId } },
            }),
          )
        : data(
            await api.GET('/api/v1/devices/{device}/allowed-ports', {
              params: { path: { device: owner.device } },
            }),
          ),
  });
  const save = useMutation({
    mutationFn: async (list: number[] | null) => {
      const body = { ports: list };
      return owner.kind === 'fleet'
        ? data(
            await api.PUT('/api/v1/fleets/{fleetId}/allowed-ports', {
              params: { path: { fleetId: owner.fleetId } },
              body,
            }),
          )
        : data(
            await api.PUT('/api/v1/devices/{device}/allowed-ports', {
              params: { path: { device: owner.device } },
              body,
            }),
          );
    },
    onSuccess: async () => {
      setEditing(false);
      await queryClient.invalidateQueries({ queryKey: ['allowed-ports'] });
    },
  });
  const [editing, setEditing] = useState(false);
  const [text, setText] = useState('');
  const [problem, setProblem] = useState<string>();
  const submit = (event: FormEvent) => {
    event.preventDefault();
    const list = text
      .split(/[\s,]+/)
      .filter(Boolean)
      .map(Number);
    if (list.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) {
      setProblem('Ports are whole numbers from 1 to 65535, separated by commas or spaces.');
      return;
    }
    setProblem(undefined);
    save.mutate(list);
  };
  return (
    <QueryState query={ports}>
      {(allowed) => (
        <>
          <Group gap="xs">
            {allowed.ports.map((p) => (
              <Badge key={p} variant="dot">
                {p}
              </Badge>
            ))}
            {allowed.ports.length === 0 && <Text size="sm">No port may be reached.</Text>}
            <Text size="sm" c="dimmed">
              from {sources[allowed.source]}
            </Text>
          </Group>
          {canManage && !editing && (
            <Group mt="xs">
              <Button
                size="xs"
                variant="light"
                onClick={() => {
                  setText(allowed.ports.join(', '));
                  setEditing(true);
                }}
              >
                Change ports
              </Button>
              {allowed.source === owner.kind && (
                <Button size="xs" variant="subtle" onClick={() => save.mutate(null)}>
                  {owner.kind === 'device' ? "Use the fleet's list" : 'Back to the default'}
                </Button>
              )}
            </Group>
          )}
          {editing && (
            <form onSubmit={submit}>
              <Group align="flex-end" mt="xs">
                <TextInput
                  label="Allowed ports"
                  description="e.g. 22, 80, 5900"
                  value={text}
                  onChange={(e) => setText(e.currentTarget.value)}
                  error={problem}
                />
                <Button type="submit" loading={save.isPending}>
                  Save
                </Button>
                <Button variant="default" onClick={() => setEditing(false)}>
                  Cancel
                </Button>
              </Group>
            </form>
          )}
          {save.isError && <ErrorNotice error={save.error} />}
        </>
      )}
    </QueryState>
  );
}
