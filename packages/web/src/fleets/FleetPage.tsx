import {
  Badge,
  Button,
  Card,
  Code,
  CopyButton,
  Group,
  Modal,
  NumberInput,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useNavigate, useParams } from '@tanstack/react-router';
import { type FormEvent, useState } from 'react';
import { api, data, type Fleet } from '../api/client.ts';
import { AllowedPorts } from '../ports/AllowedPorts.tsx';
import { useCan } from '../session/session.ts';
import { TagsEditor } from '../tags/TagsEditor.tsx';
import { Confirm } from '../ui/Confirm.tsx';
import { ago, count, when } from '../ui/format.ts';
import { AnchorLink } from '../ui/links.tsx';
import { ErrorNotice, QueryState } from '../ui/QueryState.tsx';
import { VariablesEditor } from '../variables/VariablesEditor.tsx';

/** One fleet: its devices, variables, tags, provisioning keys and port allow-list; rename and delete. */
export function FleetPage() {
  const { fleetId } = useParams({ from: '/shell/fleets/$fleetId' });
  const id = Number(fleetId);
  const fleet = useQuery({
    queryKey: ['fleet', id],
    queryFn: async () =>
      data(await api.GET('/api/v1/fleets/{fleetId}', { params: { path: { fleetId: id } } })),
  });
  return <QueryState query={fleet}>{(f) => <FleetView fleet={f} />}</QueryState>;
}

function FleetView({ fleet }: { fleet: Fleet }) {
  const can = useCan();
  const owner = { kind: 'fleet', fleetId: fleet.id } as const;
  return (
    <Stack>
      <FleetHeader fleet={fleet} />
      <Card withBorder>
        <Title order={3} size="h4" mb="xs">
          Devices
        </Title>
        <Text>
          {count(fleet.deviceCount, 'device')}.{' '}
          <AnchorLink to="/devices" search={{ fleetId: fleet.id }}>
            Show them
          </AnchorLink>
        </Text>
      </Card>
      <Card withBorder>
        <Title order={3} size="h4" mb="xs">
          Variables
        </Title>
        <VariablesEditor owner={owner} canWrite={can('fleet.variable.write')} />
      </Card>
      <Card withBorder>
        <Title order={3} size="h4" mb="xs">
          Tags
        </Title>
        <TagsEditor owner={owner} tags={fleet.tags} canWrite={can('fleet.update')} />
      </Card>
      {can('provisioning_key.manage') && <ProvisioningKeys fleet={fleet} />}
      <Card withBorder>
        <Title order={3} size="h4" mb="xs">
          Ports people may reach
        </Title>
        <AllowedPorts owner={owner} canManage={can('ports.manage')} />
      </Card>
    </Stack>
  );
}

function FleetHeader({ fleet }: { fleet: Fleet }) {
  const can = useCan();
  const queryClient = useQueryClient();
  const navigate = useNavigate();
  const [renaming, setRenaming] = useState(false);
  const [deleting, setDeleting] = useState(false);
  const [name, setName] = useState(fleet.name);
  const rename = useMutation({
    mutationFn: async () =>
      data(
        await api.PATCH('/api/v1/fleets/{fleetId}', {
          params: { path: { fleetId: fleet.id } },
          body: { name },
        }),
      ),
    onSuccess: async () => {
      setRenaming(false);
      await queryClient.invalidateQueries({ queryKey: ['fleet'] });
      await queryClient.invalidateQueries({ queryKey: ['fleets'] });
    },
  });
  const remove = useMutation({
    mutationFn: async () =>
      api.DELETE('/api/v1/fleets/{fleetId}', { params: { path: { fleetId: fleet.id } } }),
    onSuccess: async () => {
      await queryClient.invalidateQueries({ queryKey: ['fleets'] });
      await navigate({ to: '/fleets' });
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    rename.mutate();
  };
  return (
    <Group justify="space-between">
      <div>
        <Title order={2}>{fleet.name}</Title>
        {fleet.description && <Text c="dimmed">{fleet.description}</Text>}
      </div>
      <Group>
        {can('fleet.update') && (
          <Button variant="default" onClick={() => setRenaming(true)}>
            Rename
          </Button>
        )}
        {can('fleet.delete') && (
          <Button color="red" variant="light" onClick={() => setDeleting(true)}>
            Delete fleet
          </Button>
        )}
      </Group>
      <Modal opened={renaming} onClose={() => setRenaming(false)} title="Rename fleet">
        <form onSubmit={submit}>
          <Stack>
            <TextInput label="Name" required value={name} onChange={(e) => setName(e.currentTarget.value)} />
            {rename.isError && <ErrorNotice error={rename.error} />}
            <Button type="submit" loading={rename.isPending}>
              Rename
            </Button>
          </Stack>
        </form>
      </Modal>
      <Confirm
        opened={deleting}
        title={`Delete ${fleet.name}?`}
        confirmLabel="Delete fleet"
        busy={remove.isPending}
        onCancel={() => setDeleting(false)}
        onConfirm={() => remove.mutate()}
      >
        <Stack gap="xs">
          <Text>
            The fleet's variables, tags, provisioning keys and port list are deleted with it.
            {fleet.deviceCount > 0 &&
              ` It still holds ${count(fleet.deviceCount, 'device')}: move them to another fleet first.`}
          </Text>
          {remove.isError && <ErrorNotice error={remove.error} />}
        </Stack>
      </Confirm>
    </Group>
  );
}

function ProvisioningKeys({ fleet }: { fleet: Fleet }) {
  const queryClient = useQueryClient();
  const keys = useQuery({
    queryKey: ['provisioning-keys', fleet.id],
    queryFn: async () =>
      data(
        await api.GET('/api/v1/fleets/{fleetId}/provisioning-keys', {
          params: { path: { fleetId: fleet.id } },
        }),
      ).items,
  });
  const [name, setName] = useState('');
  const [expiresInDays, setExpiresInDays] = useState<number | string>('');
  const [maxUses, setMaxUses] = useState<number | string>('');
  const [created, setCreated] = useState<{ name: string; key: string }>();
  const [revoking, setRevoking] = useState<{ id: number; name: string }>();
  const create = useMutation({
    mutationFn: async () =>
      data(
        await api.POST('/api/v1/fleets/{fleetId}/provisioning-keys', {
          params: { path: { fleetId: fleet.id } },
          body: {
            name: name.trim(),
            ...(typeof expiresInDays === 'number' ? { expiresInDays } : {}),
            ...(typeof maxUses === 'number' ? { maxUses } : {}),
          },
        }),
      ),
    onSuccess: async (key) => {
      setCreated({ name: key.name, key: key.key });
      setName('');
      await queryClient.invalidateQueries({ queryKey: ['provisioning-keys'] });
    },
  });
  const revoke = useMutation({
    mutationFn: async (keyId: number) =>
      api.DELETE('/api/v1/provisioning-keys/{keyId}', { params: { path: { keyId } } }),
    onSuccess: async () => {
      setRevoking(undefined);
      await queryClient.invalidateQueries({ queryKey: ['provisioning-keys'] });
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    create.mutate();
  };
  const agentConfig = created
    ? JSON.stringify(
        { server: window.location.origin, enrollment: { provisioningKey: created.key } },
        null,
        2,
      )
    : '';
  return (
    <Card withBorder>
      <Title order={3} size="h4" mb="xs">
        Provisioning keys
      </Title>
      <Text size="sm" c="dimmed" mb="xs">
        Devices register into this fleet with a provisioning key (balena style). A key is shown once, when it
        is made.
      </Text>
      <QueryState query={keys} isEmpty={(items) => items.length === 0} empty="No provisioning keys yet.">
        {(items) => (
          <Table aria-label="Provisioning keys">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Name</Table.Th>
                <Table.Th>Key starts</Table.Th>
                <Table.Th>Uses</Table.Th>
                <Table.Th>Expires</Table.Th>
                <Table.Th>Last used</Table.Th>
                <Table.Th aria-label="State" />
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {items.map((key) => (
                <Table.Tr key={key.id}>
                  <Table.Td>{key.name}</Table.Td>
                  <Table.Td>
                    <Code>{key.prefix}…</Code>
                  </Table.Td>
                  <Table.Td>
                    {key.uses}
                    {key.maxUses !== null ? ` of ${key.maxUses}` : ''}
                  </Table.Td>
                  <Table.Td>{key.expiresAt ? when(key.expiresAt) : 'never'}</Table.Td>
                  <Table.Td>{ago(key.lastUsedAt)}</Table.Td>
                  <Table.Td>
                    {key.revokedAt ? (
                      <Badge color="gray">revoked</Badge>
                    ) : (
                      <Button
                        size="xs"
                        color="red"
                        variant="subtle"
                        onClick={() => setRevoking({ id: key.id, name: key.name })}
                      >
                        Revoke
                      </Button>
                    )}
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        )}
      </QueryState>
      <form onSubmit={submit}>
        <Group align="flex-end" mt="sm">
          <TextInput
            label="Key name"
            required
            value={name}
            onChange={(e) => setName(e.currentTarget.value)}
          />
          <NumberInput
            label="Expires in days"
            min={1}
            max={3650}
            value={expiresInDays}
            onChange={setExpiresInDays}
            w={140}
          />
          <NumberInput label="Maximum uses" min={1} value={maxUses} onChange={setMaxUses} w={140} />
          <Button type="submit" loading={create.isPending}>
            Create key
          </Button>
        </Group>
      </form>
      {create.isError && <ErrorNotice error={create.error} />}
      <Modal
        opened={created !== undefined}
        onClose={() => setCreated(undefined)}
        title={`Provisioning key ${created?.name ?? ''}`}
        size="lg"
      >
        <Stack>
          <Text>Copy it now: it is not shown again.</Text>
          <Group wrap="nowrap">
            <Code block style={{ flex: 1, wordBreak: 'break-all' }} data-testid="provisioning-key">
              {created?.key}
            </Code>
            <CopyButton value={created?.key ?? ''}>
              {({ copied, copy }) => (
                <Button onClick={copy} variant="light">
                  {copied ? 'Copied' : 'Copy'}
                </Button>
              )}
            </CopyButton>
          </Group>
          <Text size="sm">
            On a device, put it in <Code>/etc/fleetgate/agent.json</Code> and run{' '}
            <Code>fleetgate-agent run --config /etc/fleetgate/agent.json</Code>:
          </Text>
          <Code block style={{ wordBreak: 'break-all' }}>
            {agentConfig}
          </Code>
        </Stack>
      </Modal>
      <Confirm
        opened={revoking !== undefined}
        title={`Revoke ${revoking?.name}?`}
        confirmLabel="Revoke"
        busy={revoke.isPending}
        onCancel={() => setRevoking(undefined)}
        onConfirm={() => revoking && revoke.mutate(revoking.id)}
      >
        No new device can register with it; devices it already registered keep working.
      </Confirm>
    </Card>
  );
}
