import {
  ActionIcon,
  Badge,
  Button,
  Checkbox,
  Group,
  Stack,
  Table,
  Text,
  TextInput,
  Tooltip,
} from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { api, data } from '../api/client.ts';
import { Confirm } from '../ui/Confirm.tsx';
import { ago } from '../ui/format.ts';
import { ErrorNotice, QueryState } from '../ui/QueryState.tsx';

/** A variable as the editor shows it: a device's list also says where each value comes from. */
interface Row {
  name: string;
  value: string | null;
  secret: boolean;
  updatedAt: string;
  source?: 'device' | 'fleet';
  overridesFleet?: boolean;
}

type Owner = { kind: 'fleet'; fleetId: number } | { kind: 'device'; device: string };

/**
 * Variables of a fleet or a device: values are shown except secrets (write-only: the API never returns them);
 * on a device, where each one comes from (its own value overriding the fleet's, or the fleet's).
 */
export function VariablesEditor({ owner, canWrite }: { owner: Owner; canWrite: boolean }) {
  const queryClient = useQueryClient();
  const key = ['variables', owner];
  const variables = useQuery({
    queryKey: key,
    queryFn: async (): Promise<Row[]> =>
      owner.kind === 'fleet'
        ? data(
            await api.GET('/api/v1/fleets/{fleetId}/variables', {
              params: { path: { fleetId: owner.fleetId } },
            }),
          ).items
        : data(
            await api.GET('/api/v1/devices/{device}/variables', {
              params: { path: { device: owner.device } },
            }),
          ).items,
  });
  const save = useMutation({
    mutationFn: async (v: { name: string; value: string; secret: boolean }) => {
      const body = { value: v.value, secret: v.secret };
      if (owner.kind === 'fleet') {
        await api.PUT('/api/v1/fleets/{fleetId}/variables/{name}', {
          params: { path: { fleetId: owner.fleetId, name: v.name } },
          body,
        });
      } else {
        await api.PUT('/api/v1/devices/{device}/variables/{name}', {
          params: { path: { device: owner.device, name: v.name } },
          body,
        });
      }
    },
    onSuccess: async (_r, v) => {
      notifications.show({
        color: 'green',
        message: `Saved ${v.name}: devices receive it at once when online`,
      });
      await queryClient.invalidateQueries({ queryKey: ['variables'] });
    },
  });
  const remove = useMutation({
    mutationFn: async (name: string) => {
      if (owner.kind === 'fleet') {
        await api.DELETE('/api/v1/fleets/{fleetId}/variables/{name}', {
          params: { path: { fleetId: owner.fleetId, name } },
        });
      } else {
        await api.DELETE('/api/v1/devices/{device}/variables/{name}', {
          params: { path: { device: owner.device, name } },
        });
      }
    },
    onSuccess: async () => {
      setRemoving(undefined);
      await queryClient.invalidateQueries({ queryKey: ['variables'] });
    },
  });
  const [removing, setRemoving] = useState<string>();
  const [editing, setEditing] = useState<Row>();

  return (
    <Stack>
      <QueryState
        query={variables}
        isEmpty={(rows) => rows.length === 0}
        empty={`No variables yet.${canWrite ? ' Add one below: devices get it in their environment file.' : ''}`}
      >
        {(rows) => (
          <Table aria-label="Variables">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Name</Table.Th>
                <Table.Th>Value</Table.Th>
                {owner.kind === 'device' && <Table.Th>From</Table.Th>}
                <Table.Th>Changed</Table.Th>
                {canWrite && <Table.Th aria-label="Actions" />}
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {rows.map((row) => (
                <Table.Tr key={`${row.source ?? ''}${row.name}`} data-variable={row.name}>
                  <Table.Td>
                    <code>{row.name}</code>
                  </Table.Td>
                  <Table.Td>
                    {row.secret ? (
                      <Badge variant="dot" color="gray">
                        secret (write-only)
                      </Badge>
                    ) : (
                      <code>{row.value}</code>
                    )}
                  </Table.Td>
                  {owner.kind === 'device' && (
                    <Table.Td>
                      {row.source === 'device' ? (
                        <Badge variant="dot">
                          {row.overridesFleet ? 'device (overrides fleet)' : 'device'}
                        </Badge>
                      ) : (
                        <Badge variant="dot" color="gray">
                          fleet
                        </Badge>
                      )}
                    </Table.Td>
                  )}
                  <Table.Td>{ago(row.updatedAt)}</Table.Td>
                  {canWrite && (
                    <Table.Td>
                      <Group gap={4} justify="flex-end" wrap="nowrap">
                        <Tooltip
                          label={
                            owner.kind === 'device' && row.source === 'fleet'
                              ? 'Override on this device'
                              : 'Change'
                          }
                        >
                          <ActionIcon
                            variant="subtle"
                            aria-label={`Change ${row.name}`}
                            onClick={() => setEditing(row)}
                          >
                            ✎
                          </ActionIcon>
                        </Tooltip>
                        {(owner.kind === 'fleet' || row.source === 'device') && (
                          <ActionIcon
                            variant="subtle"
                            color="red"
                            aria-label={`Remove ${row.name}`}
                            onClick={() => setRemoving(row.name)}
                          >
                            ✕
                          </ActionIcon>
                        )}
                      </Group>
                    </Table.Td>
                  )}
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        )}
      </QueryState>
      {canWrite && (
        <VariableForm
          key={editing ? `edit-${editing.name}` : 'new'}
          initial={editing}
          busy={save.isPending}
          onCancel={editing ? () => setEditing(undefined) : undefined}
          onSave={(v) => save.mutate(v, { onSuccess: () => setEditing(undefined) })}
        />
      )}
      {save.isError && <ErrorNotice error={save.error} />}
      <Confirm
        opened={removing !== undefined}
        title={`Remove ${removing}?`}
        confirmLabel="Remove"
        busy={remove.isPending}
        onCancel={() => setRemoving(undefined)}
        onConfirm={() => removing && remove.mutate(removing)}
      >
        {owner.kind === 'fleet'
          ? `Every device of the fleet loses ${removing}, unless it has its own value.`
          : `The device loses its own ${removing}; the fleet's value applies again if there is one.`}
      </Confirm>
    </Stack>
  );
}

function VariableForm({
  initial,
  busy,
  onSave,
  onCancel,
}: {
  initial: Row | undefined;
  busy: boolean;
  onSave(v: { name: string; value: string; secret: boolean }): void;
  onCancel?: () => void;
}) {
  const [name, setName] = useState(initial?.name ?? '');
  const [value, setValue] = useState(initial && !initial.secret ? (initial.value ?? '') : '');
  const [secret, setSecret] = useState(initial?.secret ?? false);
  const submit = (event: FormEvent) => {
    event.preventDefault();
    onSave({ name: name.trim(), value, secret });
  };
  return (
    <form onSubmit={submit} aria-label={initial ? `Change ${initial.name}` : 'Add a variable'}>
      <Group align="flex-end">
        <TextInput
          label="Name"
          placeholder="API_URL"
          required
          value={name}
          readOnly={initial !== undefined}
          onChange={(e) => setName(e.currentTarget.value)}
        />
        <TextInput
          label="Value"
          placeholder={initial?.secret ? 'new secret value' : ''}
          value={value}
          onChange={(e) => setValue(e.currentTarget.value)}
        />
        <Checkbox
          label="Secret"
          checked={secret}
          onChange={(e) => setSecret(e.currentTarget.checked)}
          mb={8}
        />
        <Button type="submit" loading={busy}>
          {initial ? 'Save' : 'Add variable'}
        </Button>
        {onCancel && (
          <Button variant="default" onClick={onCancel}>
            Cancel
          </Button>
        )}
      </Group>
      {secret && (
        <Text size="xs" c="dimmed" mt={4}>
          A secret is sent to devices but never shown again here or by the API.
        </Text>
      )}
    </form>
  );
}
