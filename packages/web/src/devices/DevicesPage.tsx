import {
  Button,
  Checkbox,
  Code,
  Group,
  Menu,
  Modal,
  Select,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { useDebouncedCallback, useLocalStorage } from '@mantine/hooks';
import { keepPreviousData, useQuery, useQueryClient } from '@tanstack/react-query';
import { useNavigate, useSearch } from '@tanstack/react-router';
import { useState } from 'react';
import { api, type Device, data } from '../api/client.ts';
import type { DevicesSearch } from '../app/router.tsx';
import { useFleets } from '../fleets/queries.ts';
import { useCan, useOrg } from '../session/session.ts';
import { type BulkOutcome, BulkResults, runBulk } from '../ui/BulkResults.tsx';
import { Confirm } from '../ui/Confirm.tsx';
import { ago, count } from '../ui/format.ts';
import { AnchorLink } from '../ui/links.tsx';
import { Pager } from '../ui/Pager.tsx';
import { EmptyState, QueryState } from '../ui/QueryState.tsx';
import { StatusBadge, statuses } from '../ui/StatusBadge.tsx';

const PAGE_SIZE = 50;
const sorts = [
  { value: 'name', label: 'Name A–Z' },
  { value: '-name', label: 'Name Z–A' },
  { value: '-lastSeenAt', label: 'Seen most recently' },
  { value: 'lastSeenAt', label: 'Seen longest ago' },
  { value: '-createdAt', label: 'Newest first' },
  { value: 'createdAt', label: 'Oldest first' },
] as const;
type Sort = (typeof sorts)[number]['value'];

const columns = ['status', 'uuid', 'fleet', 'type', 'lastSeen', 'agent', 'tags'] as const;
type Column = (typeof columns)[number];
const columnLabels: Record<Column, string> = {
  status: 'Status',
  uuid: 'UUID',
  fleet: 'Fleet',
  type: 'Device type',
  lastSeen: 'Last seen',
  agent: 'Agent',
  tags: 'Tags',
};

/** The keys of a device each column shows. */
const columnFields: Record<Column, (keyof Device)[]> = {
  status: [],
  uuid: [],
  fleet: ['fleetName'],
  type: ['deviceType'],
  lastSeen: [],
  agent: ['agentVersion'],
  tags: ['tags'],
};
/** What every row needs whatever the columns: its link, its name, and its presence (patched in live). */
const rowFields = [
  'uuid',
  'name',
  'status',
  'onlineVia',
  'vpnAddress',
  'connectedAt',
  'disconnectedAt',
  'lastSeenAt',
] as const satisfies (keyof Device)[];
/** A row of the table: what `rowFields` asked for, and the shown columns' keys when they are shown. */
type TableDevice = Pick<Device, 'id' | (typeof rowFields)[number]> & Partial<Device>;

/**
 * Every device of the organization: filtered, sorted and paged by the server; status updates live. The list asks
 * only for the keys the shown columns need (`fields`): a page of 50 whole devices, state reports and all, costs the
 * server several times as much to read and to send.
 */
export function DevicesPage() {
  const { orgId } = useOrg();
  const can = useCan();
  const search = useSearch({ from: '/shell/devices' });
  const navigate = useNavigate({ from: '/devices' });
  const setSearch = (next: Partial<DevicesSearch>) =>
    void navigate({
      search: (old: DevicesSearch) => clean({ ...old, page: undefined, ...next }),
      replace: true,
    });
  const [text, setText] = useState(search.q ?? '');
  const applyText = useDebouncedCallback((value: string) => setSearch({ q: value.trim() || undefined }), 250);
  const [shown, setShown] = useLocalStorage<Column[]>({
    key: 'fleetgate-device-columns',
    defaultValue: ['status', 'fleet', 'type', 'lastSeen', 'tags'],
  });
  const [selected, setSelected] = useState<Map<number, TableDevice>>(new Map());
  const fleets = useFleets(orgId);
  const page = search.page ?? 1;
  const query = {
    orgId,
    limit: PAGE_SIZE,
    page,
    sort: (search.sort as Sort | undefined) ?? 'name',
    ...(search.q ? { q: search.q } : {}),
    ...(search.status ? { status: search.status as Device['status'] } : {}),
    ...(search.fleetId ? { fleetId: search.fleetId } : {}),
    ...(search.tag ? { tag: search.tag } : {}),
    ...(search.deviceType ? { deviceType: search.deviceType } : {}),
    fields: [...rowFields, ...shown.flatMap((c) => columnFields[c] ?? [])].join(','),
  };
  const devices = useQuery({
    queryKey: ['devices', query],
    enabled: orgId !== undefined,
    placeholderData: keepPreviousData,
    queryFn: async () => {
      const page = data(await api.GET('/api/v1/devices', { params: { query } }));
      // Each row holds `rowFields`: the query asked for them.
      return { ...page, items: page.items as TableDevice[] };
    },
  });

  const allOnPage = devices.data?.items ?? [];
  const allSelected = allOnPage.length > 0 && allOnPage.every((d) => selected.has(d.id));
  const toggle = (device: TableDevice) =>
    setSelected((old) => {
      const next = new Map(old);
      if (next.has(device.id)) next.delete(device.id);
      else next.set(device.id, device);
      return next;
    });

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>Devices</Title>
        {devices.data && <Text c="dimmed">{count(devices.data.total, 'device')}</Text>}
      </Group>
      <Group align="flex-end" wrap="wrap">
        <TextInput
          label="Search"
          placeholder="name or uuid"
          value={text}
          onChange={(e) => {
            setText(e.currentTarget.value);
            applyText(e.currentTarget.value);
          }}
          w={220}
        />
        <Select
          label="Status"
          placeholder="any"
          clearable
          w={160}
          data={statuses}
          value={search.status ?? null}
          onChange={(value) => setSearch({ status: value ?? undefined })}
        />
        <Select
          label="Fleet"
          placeholder="any"
          clearable
          searchable
          w={200}
          data={(fleets.data?.items ?? []).map((f) => ({ value: String(f.id), label: f.name }))}
          value={search.fleetId ? String(search.fleetId) : null}
          onChange={(value) => setSearch({ fleetId: value ? Number(value) : undefined })}
        />
        <TextInput
          label="Tag"
          placeholder="key or key=value"
          w={180}
          defaultValue={search.tag ?? ''}
          onKeyDown={(e) => {
            if (e.key === 'Enter') setSearch({ tag: e.currentTarget.value.trim() || undefined });
          }}
          onBlur={(e) => setSearch({ tag: e.currentTarget.value.trim() || undefined })}
        />
        <TextInput
          label="Device type"
          placeholder="any"
          w={170}
          defaultValue={search.deviceType ?? ''}
          onKeyDown={(e) => {
            if (e.key === 'Enter') setSearch({ deviceType: e.currentTarget.value.trim() || undefined });
          }}
          onBlur={(e) => setSearch({ deviceType: e.currentTarget.value.trim() || undefined })}
        />
        <Select
          label="Sort"
          w={160}
          allowDeselect={false}
          data={sorts.map((s) => ({ value: s.value, label: s.label }))}
          value={search.sort ?? 'name'}
          onChange={(value) => setSearch({ sort: value ?? undefined })}
        />
        <Menu closeOnItemClick={false}>
          <Menu.Target>
            <Button variant="default">Columns</Button>
          </Menu.Target>
          <Menu.Dropdown>
            {columns.map((column) => (
              <Menu.Item key={column}>
                <Checkbox
                  label={columnLabels[column]}
                  checked={shown.includes(column)}
                  onChange={(e) =>
                    setShown(
                      e.currentTarget.checked
                        ? columns.filter((c) => c === column || shown.includes(c))
                        : shown.filter((c) => c !== column),
                    )
                  }
                />
              </Menu.Item>
            ))}
          </Menu.Dropdown>
        </Menu>
      </Group>
      {selected.size > 0 && (
        <BulkBar
          devices={[...selected.values()]}
          canMove={can('device.update')}
          canTag={can('device.tag')}
          canDecommission={can('device.decommission')}
          onDone={() => setSelected(new Map())}
        />
      )}
      <QueryState
        query={devices}
        isEmpty={(p) => p.items.length === 0}
        empty={
          <NoDevices
            filtered={Boolean(search.q || search.status || search.fleetId || search.tag || search.deviceType)}
          />
        }
      >
        {(result) => (
          <>
            <Table.ScrollContainer minWidth={700}>
              <Table striped highlightOnHover aria-label="Devices">
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th w={40}>
                      <Checkbox
                        aria-label="Select all devices on this page"
                        checked={allSelected}
                        onChange={() =>
                          setSelected((old) => {
                            const next = new Map(old);
                            for (const d of allOnPage) {
                              if (allSelected) next.delete(d.id);
                              else next.set(d.id, d);
                            }
                            return next;
                          })
                        }
                      />
                    </Table.Th>
                    <Table.Th>Name</Table.Th>
                    {columns
                      .filter((c) => shown.includes(c))
                      .map((c) => (
                        <Table.Th key={c}>{columnLabels[c]}</Table.Th>
                      ))}
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {result.items.map((device) => (
                    <Table.Tr key={device.id} data-device={device.uuid}>
                      <Table.Td>
                        <Checkbox
                          aria-label={`Select ${device.name}`}
                          checked={selected.has(device.id)}
                          onChange={() => toggle(device)}
                        />
                      </Table.Td>
                      <Table.Td>
                        <AnchorLink to="/devices/$device" params={{ device: device.uuid }}>
                          {device.name}
                        </AnchorLink>
                      </Table.Td>
                      {shown.includes('status') && (
                        <Table.Td>
                          <StatusBadge status={device.status} />
                        </Table.Td>
                      )}
                      {shown.includes('uuid') && (
                        <Table.Td>
                          <Code>{device.uuid.slice(0, 12)}</Code>
                        </Table.Td>
                      )}
                      {shown.includes('fleet') && <Table.Td>{device.fleetName}</Table.Td>}
                      {shown.includes('type') && <Table.Td>{device.deviceType}</Table.Td>}
                      {shown.includes('lastSeen') && (
                        <Table.Td data-column="last-seen">
                          {device.status === 'online' ? 'now' : ago(device.lastSeenAt)}
                        </Table.Td>
                      )}
                      {shown.includes('agent') && <Table.Td>{device.agentVersion ?? '—'}</Table.Td>}
                      {shown.includes('tags') && (
                        <Table.Td>
                          {Object.entries(device.tags ?? {})
                            .map(([k, v]) => (v ? `${k}=${v}` : k))
                            .join(', ')}
                        </Table.Td>
                      )}
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            </Table.ScrollContainer>
            <Pager
              total={result.total}
              pageSize={PAGE_SIZE}
              page={page}
              onChange={(p) => void navigate({ search: (old: DevicesSearch) => clean({ ...old, page: p }) })}
            />
          </>
        )}
      </QueryState>
    </Stack>
  );
}

function clean(search: DevicesSearch): DevicesSearch {
  return Object.fromEntries(
    Object.entries(search).filter(([, v]) => v !== undefined && v !== ''),
  ) as DevicesSearch;
}

function NoDevices({ filtered }: { filtered: boolean }) {
  if (filtered) return <Text>No device matches these filters.</Text>;
  return (
    <EmptyState>
      <Text fw={500}>No devices yet.</Text>
      <Text size="sm">
        Create a provisioning key on a <AnchorLink to="/fleets">fleet's page</AnchorLink>, then on the device:
      </Text>
      <Code block>
        {`# /etc/fleetgate/agent.json\n{"server": "${window.location.origin}", "enrollment": {"provisioningKey": "fgp_…"}}\n\nfleetgate-agent run --config /etc/fleetgate/agent.json`}
      </Code>
      <Text size="sm">
        Mender devices running <Code>mender-client</Code> appear under{' '}
        <AnchorLink to="/pending">Pending devices</AnchorLink>.
      </Text>
    </EmptyState>
  );
}

type BulkAction = 'move' | 'tag' | 'decommission';

function BulkBar({
  devices,
  canMove,
  canTag,
  canDecommission,
  onDone,
}: {
  devices: TableDevice[];
  canMove: boolean;
  canTag: boolean;
  canDecommission: boolean;
  onDone(): void;
}) {
  const { orgId } = useOrg();
  const fleets = useFleets(orgId);
  const queryClient = useQueryClient();
  const [action, setAction] = useState<BulkAction>();
  const [fleetId, setFleetId] = useState<string | null>(null);
  const [tag, setTag] = useState('');
  const [outcomes, setOutcomes] = useState<BulkOutcome[]>();
  const [title, setTitle] = useState('');

  const run = async (name: string, act: (device: TableDevice) => Promise<string>) => {
    setAction(undefined);
    setTitle(name);
    await runBulk(devices, (d) => ({ key: String(d.id), label: d.name }), act, setOutcomes);
    await queryClient.invalidateQueries({ queryKey: ['devices'] });
  };
  const move = () => {
    const target = fleets.data?.items.find((f) => String(f.id) === fleetId);
    if (!target) return;
    void run(`Move ${devices.length} devices to ${target.name}`, async (d) => {
      await api.PATCH('/api/v1/devices/{device}', {
        params: { path: { device: d.uuid } },
        body: { fleetId: target.id },
      });
      return `moved to ${target.name}`;
    });
  };
  const addTag = () => {
    const eq = tag.indexOf('=');
    const key = (eq < 0 ? tag : tag.slice(0, eq)).trim();
    const value = eq < 0 ? '' : tag.slice(eq + 1).trim();
    if (!key) return;
    void run(`Tag ${devices.length} devices with ${tag}`, async (d) => {
      await api.PUT('/api/v1/devices/{device}/tags/{key}', {
        params: { path: { device: d.uuid, key } },
        body: { value },
      });
      return `tagged ${key}${value ? `=${value}` : ''}`;
    });
  };
  const decommission = () =>
    void run(`Decommission ${devices.length} devices`, async (d) => {
      await api.POST('/api/v1/devices/{device}/decommission', { params: { path: { device: d.uuid } } });
      return 'decommissioned';
    });

  return (
    <Group>
      <Text size="sm">{devices.length} selected</Text>
      {canMove && (
        <Button size="xs" variant="light" onClick={() => setAction('move')}>
          Move to fleet…
        </Button>
      )}
      {canTag && (
        <Button size="xs" variant="light" onClick={() => setAction('tag')}>
          Tag…
        </Button>
      )}
      {canDecommission && (
        <Button size="xs" variant="light" color="red" onClick={() => setAction('decommission')}>
          Decommission…
        </Button>
      )}
      <Button size="xs" variant="subtle" onClick={onDone}>
        Clear selection
      </Button>
      <Modal
        opened={action === 'move'}
        onClose={() => setAction(undefined)}
        title={`Move ${devices.length} devices`}
      >
        <Stack>
          <Select
            label="To fleet"
            data={(fleets.data?.items ?? []).map((f) => ({ value: String(f.id), label: f.name }))}
            value={fleetId}
            onChange={setFleetId}
            searchable
          />
          <Button disabled={!fleetId} onClick={move}>
            Move
          </Button>
        </Stack>
      </Modal>
      <Modal
        opened={action === 'tag'}
        onClose={() => setAction(undefined)}
        title={`Tag ${devices.length} devices`}
      >
        <Stack>
          <TextInput
            label="Tag"
            placeholder="key or key=value"
            value={tag}
            onChange={(e) => setTag(e.currentTarget.value)}
          />
          <Button disabled={!tag.trim()} onClick={addTag}>
            Tag
          </Button>
        </Stack>
      </Modal>
      <Confirm
        opened={action === 'decommission'}
        title={`Decommission ${devices.length} devices?`}
        confirmLabel="Decommission"
        onCancel={() => setAction(undefined)}
        onConfirm={decommission}
      >
        <Text>
          Every key and token of {devices.map((d) => d.name).join(', ')} is refused at once and their live
          connections close. The devices must enroll again to come back.
        </Text>
      </Confirm>
      <BulkResults
        title={title}
        total={devices.length}
        outcomes={outcomes}
        onClose={() => {
          setOutcomes(undefined);
          onDone();
        }}
      />
    </Group>
  );
}
