import {
  Button,
  Checkbox,
  Code,
  Group,
  Modal,
  Select,
  Stack,
  Table,
  Text,
  Textarea,
  TextInput,
  Title,
} from '@mantine/core';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { type AuthSet, api, data } from '../api/client.ts';
import { useFleets } from '../fleets/queries.ts';
import { useCan, useOrg } from '../session/session.ts';
import { type BulkOutcome, BulkResults } from '../ui/BulkResults.tsx';
import { ago } from '../ui/format.ts';
import { EmptyState, ErrorNotice, QueryState } from '../ui/QueryState.tsx';
import { PreauthorizeCsv } from './PreauthorizeCsv.tsx';

/**
 * Devices waiting for an admin (Mender-style auth sets: identity + public key): accept into a fleet or reject,
 * one or many at once; and preauthorize a device before it first asks.
 */
export function PendingPage() {
  const { orgId } = useOrg();
  const can = useCan();
  const queryClient = useQueryClient();
  const fleets = useFleets(orgId);
  const pending = useQuery({
    queryKey: ['auth-sets', 'pending', orgId],
    enabled: orgId !== undefined && can('device.authorize'),
    queryFn: async () =>
      data(
        await api.GET('/api/v1/auth-sets', { params: { query: { orgId, status: 'pending', limit: 500 } } }),
      ),
  });
  const [selected, setSelected] = useState<Set<number>>(new Set());
  const [fleetId, setFleetId] = useState<string | null>(null);
  const [outcomes, setOutcomes] = useState<BulkOutcome[]>();
  const [title, setTitle] = useState('');
  const [preauthorizing, setPreauthorizing] = useState(false);
  const [uploading, setUploading] = useState(false);

  const decide = useMutation({
    mutationFn: async ({ verdict, ids }: { verdict: 'accept' | 'reject'; ids: number[] }) => {
      setTitle(`${verdict === 'accept' ? 'Accept' : 'Reject'} ${ids.length} devices`);
      const result =
        verdict === 'accept'
          ? data(
              await api.POST('/api/v1/auth-sets/accept', {
                body: { ids, ...(fleetId ? { fleetId: Number(fleetId) } : {}) },
              }),
            )
          : data(await api.POST('/api/v1/auth-sets/reject', { body: { ids } }));
      return result.items.map((item) => ({
        key: String(item.id),
        label: labelOf(
          pending.data?.items.find((a) => a.id === item.id),
          item.id,
        ),
        ok: item.outcome !== 'error',
        message: item.reason ?? item.outcome,
      }));
    },
    onSuccess: async (result) => {
      setOutcomes(result);
      setSelected(new Set());
      await queryClient.invalidateQueries({ queryKey: ['auth-sets'] });
      await queryClient.invalidateQueries({ queryKey: ['devices'] });
    },
  });

  if (!can('device.authorize')) {
    return (
      <Stack>
        <Title order={2}>Pending devices</Title>
        <Text>
          Your role does not include accepting devices: an owner or admin of the organization does that.
        </Text>
      </Stack>
    );
  }
  const items = pending.data?.items ?? [];
  const allSelected = items.length > 0 && items.every((a) => selected.has(a.id));
  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>Pending devices</Title>
        <Group>
          <Button variant="light" onClick={() => setPreauthorizing(true)}>
            Preauthorize a device
          </Button>
          <Button variant="light" onClick={() => setUploading(true)}>
            Upload a CSV…
          </Button>
        </Group>
      </Group>
      <Group align="flex-end">
        <Select
          label="Accept into fleet"
          placeholder="the device's own fleet"
          clearable
          w={240}
          data={(fleets.data?.items ?? []).map((f) => ({ value: String(f.id), label: f.name }))}
          value={fleetId}
          onChange={setFleetId}
        />
        <Button
          disabled={selected.size === 0}
          loading={decide.isPending && decide.variables?.verdict === 'accept'}
          onClick={() => decide.mutate({ verdict: 'accept', ids: [...selected] })}
        >
          Accept {selected.size || ''}
        </Button>
        <Button
          color="red"
          variant="light"
          disabled={selected.size === 0}
          loading={decide.isPending && decide.variables?.verdict === 'reject'}
          onClick={() => decide.mutate({ verdict: 'reject', ids: [...selected] })}
        >
          Reject {selected.size || ''}
        </Button>
      </Group>
      {decide.isError && <ErrorNotice error={decide.error} />}
      <QueryState
        query={pending}
        isEmpty={(page) => page.items.length === 0}
        empty={
          <EmptyState>
            <Text fw={500}>No device is waiting.</Text>
            <Text size="sm">
              Devices that send a signed auth request (mender-client, or fleetgate-agent with a key pair) wait
              here until accepted. From the CLI: <Code>npx fleetgate devices pending</Code>
            </Text>
          </EmptyState>
        }
      >
        {(page) => (
          <Table striped aria-label="Pending devices">
            <Table.Thead>
              <Table.Tr>
                <Table.Th w={40}>
                  <Checkbox
                    aria-label="Select every pending device"
                    checked={allSelected}
                    onChange={() =>
                      setSelected(allSelected ? new Set() : new Set(page.items.map((a) => a.id)))
                    }
                  />
                </Table.Th>
                <Table.Th>Identity</Table.Th>
                <Table.Th>Key</Table.Th>
                <Table.Th>From</Table.Th>
                <Table.Th>Asked</Table.Th>
                <Table.Th>Requests</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {page.items.map((authSet) => (
                <Table.Tr key={authSet.id} data-auth-set={authSet.id}>
                  <Table.Td>
                    <Checkbox
                      aria-label={`Select ${labelOf(authSet, authSet.id)}`}
                      checked={selected.has(authSet.id)}
                      onChange={() =>
                        setSelected((old) => {
                          const next = new Set(old);
                          if (next.has(authSet.id)) next.delete(authSet.id);
                          else next.add(authSet.id);
                          return next;
                        })
                      }
                    />
                  </Table.Td>
                  <Table.Td>
                    <Code>{JSON.stringify(authSet.identity)}</Code>
                  </Table.Td>
                  <Table.Td>{authSet.keyType}</Table.Td>
                  <Table.Td>{authSet.sourceIp ?? '—'}</Table.Td>
                  <Table.Td>{ago(authSet.lastRequestAt ?? authSet.createdAt)}</Table.Td>
                  <Table.Td>{authSet.requestCount}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        )}
      </QueryState>
      <BulkResults
        title={title}
        total={outcomes?.length ?? 0}
        outcomes={outcomes}
        onClose={() => setOutcomes(undefined)}
      />
      <Preauthorize opened={preauthorizing} onClose={() => setPreauthorizing(false)} />
      <PreauthorizeCsv opened={uploading} onClose={() => setUploading(false)} />
    </Stack>
  );
}

function labelOf(authSet: AuthSet | undefined, id: number): string {
  if (!authSet) return `auth set ${id}`;
  return Object.entries(authSet.identity)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('|') : v}`)
    .join(' ');
}

/** One device made known ahead: its identity attributes and public key; accepted on its first signed request. */
function Preauthorize({ opened, onClose }: { opened: boolean; onClose(): void }) {
  const { orgId } = useOrg();
  const fleets = useFleets(orgId);
  const queryClient = useQueryClient();
  const [fleetId, setFleetId] = useState<string | null>(null);
  const [identity, setIdentity] = useState('{"mac": "02:00:00:00:00:01"}');
  const [publicKey, setPublicKey] = useState('');
  const [name, setName] = useState('');
  const [problem, setProblem] = useState<string>();
  const submit = useMutation({
    mutationFn: async () => {
      let parsed: Record<string, string>;
      try {
        parsed = JSON.parse(identity) as Record<string, string>;
      } catch {
        throw new Error('The identity must be a JSON object, e.g. {"mac": "02:00:00:00:00:01"}.');
      }
      return data(
        await api.POST('/api/v1/auth-sets/preauthorize', {
          body: {
            fleetId: Number(fleetId),
            devices: [{ identity: parsed, publicKey, ...(name.trim() ? { name: name.trim() } : {}) }],
          },
        }),
      );
    },
    onSuccess: async (result) => {
      const item = result.items[0];
      if (item?.outcome !== 'created') {
        setProblem(
          item?.outcome === 'conflict'
            ? 'A device with this identity is already known.'
            : `The device was not preauthorized: ${JSON.stringify(item)}`,
        );
        return;
      }
      setProblem(undefined);
      await queryClient.invalidateQueries({ queryKey: ['devices'] });
      onClose();
    },
  });
  const onSubmit = (event: FormEvent) => {
    event.preventDefault();
    submit.mutate();
  };
  return (
    <Modal opened={opened} onClose={onClose} title="Preauthorize a device" size="lg">
      <form onSubmit={onSubmit}>
        <Stack>
          <Select
            label="Fleet"
            required
            data={(fleets.data?.items ?? []).map((f) => ({ value: String(f.id), label: f.name }))}
            value={fleetId}
            onChange={setFleetId}
          />
          <TextInput
            label="Identity (JSON)"
            required
            value={identity}
            onChange={(e) => setIdentity(e.currentTarget.value)}
          />
          <Textarea
            label="Public key (PEM)"
            required
            autosize
            minRows={4}
            placeholder="-----BEGIN PUBLIC KEY-----"
            value={publicKey}
            onChange={(e) => setPublicKey(e.currentTarget.value)}
          />
          <TextInput label="Name (optional)" value={name} onChange={(e) => setName(e.currentTarget.value)} />
          <Text size="xs" c="dimmed">
            For many devices at once: <Code>npx fleetgate keygen --count 100 --prefix P --out keys/</Code>{' '}
            then upload <Code>keys/devices.csv</Code> here (Upload a CSV…), or{' '}
            <Code>npx fleetgate preauth --csv keys/devices.csv --fleet &lt;fleet&gt;</Code>
          </Text>
          {problem && <ErrorNotice error={new Error(problem)} title="Not preauthorized" />}
          {submit.isError && <ErrorNotice error={submit.error} />}
          <Button type="submit" loading={submit.isPending} disabled={!fleetId}>
            Preauthorize
          </Button>
        </Stack>
      </form>
    </Modal>
  );
}
