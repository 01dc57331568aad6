import { Button, Group, Modal, Stack, Table, Text, Textarea, TextInput, Title } from '@mantine/core';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useNavigate } from '@tanstack/react-router';
import { type FormEvent, useState } from 'react';
import { api, data } from '../api/client.ts';
import { useCan, useOrg } from '../session/session.ts';
import { ago } from '../ui/format.ts';
import { AnchorLink } from '../ui/links.tsx';
import { EmptyState, ErrorNotice, QueryState } from '../ui/QueryState.tsx';
import { useFleets } from './queries.ts';

/** The organization's fleets, and a new one. */
export function FleetsPage() {
  const { orgId } = useOrg();
  const can = useCan();
  const fleets = useFleets(orgId);
  const [creating, setCreating] = useState(false);
  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>Fleets</Title>
        {can('fleet.create') && <Button onClick={() => setCreating(true)}>New fleet</Button>}
      </Group>
      <QueryState
        query={fleets}
        isEmpty={(page) => page.items.length === 0}
        empty={
          <EmptyState>
            <Text fw={500}>No fleets yet.</Text>
            <Text size="sm">
              A fleet groups devices that share variables, provisioning keys and port rules.
              {can('fleet.create')
                ? ' Create the first one with “New fleet”.'
                : ' Ask an administrator to create one.'}
            </Text>
          </EmptyState>
        }
      >
        {(page) => (
          <Table.ScrollContainer minWidth={560}>
            <Table striped highlightOnHover aria-label="Fleets">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Name</Table.Th>
                  <Table.Th>Description</Table.Th>
                  <Table.Th>Default device type</Table.Th>
                  <Table.Th ta="right">Devices</Table.Th>
                  <Table.Th>Created</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {page.items.map((fleet) => (
                  <Table.Tr key={fleet.id}>
                    <Table.Td>
                      <AnchorLink to="/fleets/$fleetId" params={{ fleetId: String(fleet.id) }}>
                        {fleet.name}
                      </AnchorLink>
                    </Table.Td>
                    <Table.Td>{fleet.description}</Table.Td>
                    <Table.Td>{fleet.defaultDeviceType ?? '—'}</Table.Td>
                    <Table.Td ta="right">{fleet.deviceCount}</Table.Td>
                    <Table.Td>{ago(fleet.createdAt)}</Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
        )}
      </QueryState>
      {orgId !== undefined && <NewFleet orgId={orgId} opened={creating} onClose={() => setCreating(false)} />}
    </Stack>
  );
}

function NewFleet({ orgId, opened, onClose }: { orgId: number; opened: boolean; onClose(): void }) {
  const queryClient = useQueryClient();
  const navigate = useNavigate();
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const create = useMutation({
    mutationFn: async () =>
      data(await api.POST('/api/v1/fleets', { body: { orgId, name: name.trim(), description } })),
    onSuccess: async (fleet) => {
      await queryClient.invalidateQueries({ queryKey: ['fleets'] });
      onClose();
      await navigate({ to: '/fleets/$fleetId', params: { fleetId: String(fleet.id) } });
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    create.mutate();
  };
  return (
    <Modal opened={opened} onClose={onClose} title="New fleet">
      <form onSubmit={submit}>
        <Stack>
          <TextInput
            label="Name"
            required
            value={name}
            onChange={(e) => setName(e.currentTarget.value)}
            data-autofocus
          />
          <Textarea
            label="Description"
            value={description}
            onChange={(e) => setDescription(e.currentTarget.value)}
          />
          {create.isError && <ErrorNotice error={create.error} />}
          <Button type="submit" loading={create.isPending}>
            Create fleet
          </Button>
        </Stack>
      </form>
    </Modal>
  );
}
