import {
  Badge,
  Button,
  Card,
  Code,
  Group,
  Loader,
  Modal,
  Progress,
  Select,
  SimpleGrid,
  Stack,
  Table,
  Tabs,
  Text,
  Textarea,
  TextInput,
  Title,
  VisuallyHidden,
} from '@mantine/core';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useParams } from '@tanstack/react-router';
import { type FormEvent, lazy, type ReactNode, Suspense, useState } from 'react';
import { api, type Device, data } from '../api/client.ts';
import { DeviceDiagnostics } from '../diagnostics/DeviceDiagnostics.tsx';
import { DeviceFiles } from '../files/DeviceFiles.tsx';
import { useFleets } from '../fleets/queries.ts';
import { AllowedPorts } from '../ports/AllowedPorts.tsx';
import { useCan, useOrg } from '../session/session.ts';
import { mayHaveRecording, ReplayLink } from '../sessions/ReplayLink.tsx';
import { TagsEditor } from '../tags/TagsEditor.tsx';
import { Confirm } from '../ui/Confirm.tsx';
import { ago, bytes, duration, when } from '../ui/format.ts';
import { AnchorLink } from '../ui/links.tsx';
import { ErrorNotice, QueryState } from '../ui/QueryState.tsx';
import { StatusBadge } from '../ui/StatusBadge.tsx';
import { VariablesEditor } from '../variables/VariablesEditor.tsx';
import { DeviceWebPages } from './DeviceWebPages.tsx';
import { StateHistory } from './StateHistory.tsx';

// xterm.js is most of a terminal's weight: fetched when the Terminal tab first opens.
const DeviceTerminal = lazy(() =>
  import('../terminal/DeviceTerminal.tsx').then((module) => ({ default: module.DeviceTerminal })),
);
// noVNC likewise: fetched when the VNC tab first opens.
const DeviceVnc = lazy(() =>
  import('../vnc/DeviceVnc.tsx').then((module) => ({ default: module.DeviceVnc })),
);

/**
 * One device: identity, status and connections, its last state report, tags, variables, credentials, sessions,
 * a terminal for those who may open a shell on it, and a VNC viewer for those who may reach its ports.
 */
export function DevicePage() {
  const { device: ref } = useParams({ from: '/shell/devices/$device' });
  const device = useQuery({
    queryKey: ['device', ref],
    queryFn: async () =>
      data(await api.GET('/api/v1/devices/{device}', { params: { path: { device: ref } } })),
  });
  return <QueryState query={device}>{(d) => <DeviceView device={d} />}</QueryState>;
}

interface StateReport {
  hostname?: string;
  os?: string;
  kernel?: string;
  uptimeSeconds?: number;
  cpuPercent?: number;
  memory?: { totalBytes: number; usedBytes: number };
  disk?: { totalBytes: number; usedBytes: number };
  temperatureCelsius?: number;
  ipAddresses?: string[];
}

/** Tabs holding a live session (a shell, an upload, a screen): once opened, they stay mounted while another tab shows. */
const liveTabs = ['terminal', 'files', 'vnc'] as const;
type LiveTab = (typeof liveTabs)[number];

function DeviceView({ device }: { device: Device }) {
  const can = useCan();
  const owner = { kind: 'device', device: device.uuid } as const;
  const state = (device.state ?? null) as StateReport | null;
  const [tab, setTab] = useState<string | null>('variables');
  // A look at another tab must not end the session: its panel is hidden, not unmounted, once opened.
  const [opened, setOpened] = useState<ReadonlySet<LiveTab>>(new Set());
  const showTab = (value: string | null) => {
    setTab(value);
    const live = liveTabs.find((t) => t === value);
    if (live && !opened.has(live)) setOpened(new Set([...opened, live]));
  };
  return (
    <Stack>
      <DeviceHeader device={device} />
      <SimpleGrid cols={{ base: 1, md: 2 }}>
        <Card withBorder>
          <Title order={3} size="h4" mb="xs">
            Identity
          </Title>
          <Facts
            rows={[
              ['UUID', <Code key="uuid">{device.uuid}</Code>],
              [
                'Fleet',
                <AnchorLink key="fleet" to="/fleets/$fleetId" params={{ fleetId: String(device.fleetId) }}>
                  {device.fleetName}
                </AnchorLink>,
              ],
              ['Device type', device.deviceType],
              ['Created', when(device.createdAt)],
              ['Notes', device.notes || '—'],
            ]}
          />
        </Card>
        <Card withBorder>
          <Title order={3} size="h4" mb="xs">
            Status
          </Title>
          <Facts
            rows={[
              ['Status', <StatusBadge key="s" status={device.status} />],
              ['Online via', onlineVia(device)],
              ['Last seen', device.status === 'online' ? 'now' : ago(device.lastSeenAt)],
              ['Tunnel connected', when(device.connectedAt)],
              ['Tunnel disconnected', when(device.disconnectedAt)],
              ['Agent', device.agentVersion ?? '—'],
              [
                'Variables applied',
                device.variablesApplied ? appliedVariables(device.variablesApplied) : '—',
              ],
            ]}
          />
        </Card>
      </SimpleGrid>
      <Card withBorder>
        <Title order={3} size="h4" mb="xs">
          Last state report{' '}
          {device.stateReportedAt && (
            <Text span c="dimmed" size="sm">
              ({ago(device.stateReportedAt)})
            </Text>
          )}
        </Title>
        {state ? (
          <StateFacts state={state} />
        ) : (
          <Text c="dimmed">
            The device has not reported its state yet (the agent reports it once connected).
          </Text>
        )}
      </Card>
      <Card withBorder>
        <StateHistory uuid={device.uuid} reportedAt={device.stateReportedAt} />
      </Card>
      <Tabs value={tab} onChange={showTab} keepMounted={false} keepMountedMode="display-none">
        <Tabs.List>
          <Tabs.Tab value="variables">Variables</Tabs.Tab>
          <Tabs.Tab value="tags">Tags</Tabs.Tab>
          <Tabs.Tab value="connections">Connections</Tabs.Tab>
          <Tabs.Tab value="sessions">Sessions</Tabs.Tab>
          <Tabs.Tab value="credentials">Credentials</Tabs.Tab>
          <Tabs.Tab value="ports">Ports</Tabs.Tab>
          {device.attributes && <Tabs.Tab value="inventory">Inventory</Tabs.Tab>}
          {can('device.ssh') && <Tabs.Tab value="terminal">Terminal</Tabs.Tab>}
          {can('device.ssh') && <Tabs.Tab value="files">Files</Tabs.Tab>}
          {can('device.connect') && <Tabs.Tab value="web">Web pages</Tabs.Tab>}
          {can('device.connect') && <Tabs.Tab value="vnc">VNC</Tabs.Tab>}
          {can('device.diagnose') && <Tabs.Tab value="diagnostics">Diagnostics</Tabs.Tab>}
        </Tabs.List>
        <Tabs.Panel value="variables" pt="sm">
          <VariablesEditor owner={owner} canWrite={can('device.variable.write')} />
        </Tabs.Panel>
        <Tabs.Panel value="tags" pt="sm">
          <TagsEditor owner={owner} tags={device.tags} canWrite={can('device.tag')} />
        </Tabs.Panel>
        <Tabs.Panel value="connections" pt="sm">
          <Connections device={device} />
        </Tabs.Panel>
        <Tabs.Panel value="sessions" pt="sm">
          <DeviceSessions device={device} />
        </Tabs.Panel>
        <Tabs.Panel value="credentials" pt="sm">
          <Credentials device={device} />
        </Tabs.Panel>
        <Tabs.Panel value="ports" pt="sm">
          <AllowedPorts owner={owner} canManage={can('ports.manage')} />
        </Tabs.Panel>
        {device.attributes && (
          <Tabs.Panel value="inventory" pt="sm">
            <Code block>{JSON.stringify(device.attributes, null, 2)}</Code>
          </Tabs.Panel>
        )}
        {can('device.ssh') && (
          <Tabs.Panel value="terminal" pt="sm" keepMounted={opened.has('terminal')}>
            <Suspense fallback={<Loader size="sm" aria-label="Loading the terminal" />}>
              <DeviceTerminal device={device} />
            </Suspense>
          </Tabs.Panel>
        )}
        {can('device.ssh') && (
          <Tabs.Panel value="files" pt="sm" keepMounted={opened.has('files')}>
            <DeviceFiles device={device} />
          </Tabs.Panel>
        )}
        {can('device.connect') && (
          <Tabs.Panel value="web" pt="sm">
            <DeviceWebPages device={device} />
          </Tabs.Panel>
        )}
        {can('device.diagnose') && (
          <Tabs.Panel value="diagnostics" pt="sm">
            <DeviceDiagnostics device={device} />
          </Tabs.Panel>
        )}
        {can('device.connect') && (
          <Tabs.Panel value="vnc" pt="sm" keepMounted={opened.has('vnc')}>
            <Suspense fallback={<Loader size="sm" aria-label="Loading the VNC viewer" />}>
              <DeviceVnc device={device} />
            </Suspense>
          </Tabs.Panel>
        )}
      </Tabs>
    </Stack>
  );
}

function Facts({ rows }: { rows: [string, ReactNode][] }) {
  return (
    <Table>
      <Table.Tbody>
        {rows.map(([label, value]) => (
          <Table.Tr key={label}>
            <Table.Th w={160} scope="row">
              {label}
            </Table.Th>
            <Table.Td>{value}</Table.Td>
          </Table.Tr>
        ))}
      </Table.Tbody>
    </Table>
  );
}

function Usage({ label, used, total }: { label: string; used: number; total: number }) {
  const percent = total > 0 ? (used / total) * 100 : 0;
  return (
    <div>
      <Text size="sm">
        {label}: {bytes(used)} of {bytes(total)}
      </Text>
      <Progress
        value={percent}
        color={percent > 90 ? 'red' : percent > 75 ? 'orange' : 'teal'}
        aria-label={`${label} used`}
      />
    </div>
  );
}

function StateFacts({ state }: { state: StateReport }) {
  return (
    <SimpleGrid cols={{ base: 1, md: 2 }}>
      <Facts
        rows={[
          ['Hostname', state.hostname ?? '—'],
          ['OS', state.os ?? '—'],
          ['Kernel', state.kernel ?? '—'],
          ['Up', state.uptimeSeconds !== undefined ? duration(state.uptimeSeconds * 1000) : '—'],
          ['Addresses', state.ipAddresses?.join(', ') || '—'],
        ]}
      />
      <Stack gap="sm">
        {state.cpuPercent !== undefined && (
          <div>
            <Text size="sm">CPU: {state.cpuPercent.toFixed(0)} %</Text>
            <Progress value={state.cpuPercent} aria-label="CPU used" />
          </div>
        )}
        {state.memory && (
          <Usage label="Memory" used={state.memory.usedBytes} total={state.memory.totalBytes} />
        )}
        {state.disk && <Usage label="Disk" used={state.disk.usedBytes} total={state.disk.totalBytes} />}
        {state.temperatureCelsius !== undefined && (
          <Text size="sm">Temperature: {state.temperatureCelsius.toFixed(1)} °C</Text>
        )}
      </Stack>
    </SimpleGrid>
  );
}

function DeviceHeader({ device }: { device: Device }) {
  const can = useCan();
  const { orgId } = useOrg();
  const fleets = useFleets(orgId);
  const queryClient = useQueryClient();
  const [editing, setEditing] = useState(false);
  const [decommissioning, setDecommissioning] = useState(false);
  const [name, setName] = useState(device.name);
  const [notes, setNotes] = useState(device.notes);
  const [fleetId, setFleetId] = useState<string | null>(String(device.fleetId));
  const refresh = async () => {
    await queryClient.invalidateQueries({ queryKey: ['device'] });
    await queryClient.invalidateQueries({ queryKey: ['devices'] });
  };
  const update = useMutation({
    mutationFn: async () =>
      data(
        await api.PATCH('/api/v1/devices/{device}', {
          params: { path: { device: device.uuid } },
          body: {
            name: name.trim(),
            notes,
            ...(fleetId && Number(fleetId) !== device.fleetId ? { fleetId: Number(fleetId) } : {}),
          },
        }),
      ),
    onSuccess: async () => {
      setEditing(false);
      await refresh();
    },
  });
  const decommission = useMutation({
    mutationFn: async () =>
      data(
        await api.POST('/api/v1/devices/{device}/decommission', {
          params: { path: { device: device.uuid } },
        }),
      ),
    onSuccess: async () => {
      setDecommissioning(false);
      await refresh();
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    update.mutate();
  };
  return (
    <Group justify="space-between">
      <Group>
        <Title order={2}>{device.name}</Title>
        <StatusBadge status={device.status} />
      </Group>
      <Group>
        {can('device.update') && (
          <Button variant="default" onClick={() => setEditing(true)}>
            Edit
          </Button>
        )}
        {can('device.decommission') && device.status !== 'decommissioned' && (
          <Button color="red" variant="light" onClick={() => setDecommissioning(true)}>
            Decommission
          </Button>
        )}
      </Group>
      <Modal opened={editing} onClose={() => setEditing(false)} title={`Edit ${device.name}`}>
        <form onSubmit={submit}>
          <Stack>
            <TextInput label="Name" required value={name} onChange={(e) => setName(e.currentTarget.value)} />
            <Select
              label="Fleet"
              allowDeselect={false}
              data={(fleets.data?.items ?? []).map((f) => ({ value: String(f.id), label: f.name }))}
              value={fleetId}
              onChange={setFleetId}
            />
            <Textarea
              label="Notes"
              autosize
              minRows={3}
              value={notes}
              onChange={(e) => setNotes(e.currentTarget.value)}
            />
            {update.isError && <ErrorNotice error={update.error} />}
            <Button type="submit" loading={update.isPending}>
              Save
            </Button>
          </Stack>
        </form>
      </Modal>
      <Confirm
        opened={decommissioning}
        title={`Decommission ${device.name}?`}
        confirmLabel="Decommission"
        busy={decommission.isPending}
        onCancel={() => setDecommissioning(false)}
        onConfirm={() => decommission.mutate()}
      >
        <Stack gap="xs">
          <Text>
            Every key and token of the device is refused at once, its tunnel and live sessions close, and it
            must enroll again to come back.
          </Text>
          {decommission.isError && <ErrorNotice error={decommission.error} />}
        </Stack>
      </Confirm>
    </Group>
  );
}

/** How each kind of link reads in the connection history. */
const linkLabels = { tunnel: 'agent tunnel', vpn: 'OpenVPN', 'mender-connect': 'mender-connect' } as const;

/** The links the device is online through: its agent's tunnel, OpenVPN (with its VPN address), mender-connect. */
function onlineVia(device: Device): string {
  const links = device.onlineVia.map((link) =>
    link === 'vpn'
      ? `OpenVPN${device.vpnAddress ? ` (${device.vpnAddress})` : ''}`
      : link === 'mender-connect'
        ? 'mender-connect'
        : 'agent tunnel',
  );
  return links.length ? links.join(' and ') : '—';
}

function Connections({ device }: { device: Device }) {
  const connections = useQuery({
    queryKey: [
      'device',
      device.uuid,
      'connections',
      device.connectedAt,
      device.disconnectedAt,
      device.onlineVia.join(),
      device.vpnAddress,
    ],
    queryFn: async () =>
      data(
        await api.GET('/api/v1/devices/{device}/connections', {
          params: { path: { device: device.uuid }, query: { limit: 50 } },
        }),
      ),
  });
  return (
    <QueryState
      query={connections}
      isEmpty={(p) => p.items.length === 0}
      empty="The device has never connected."
    >
      {(page) => (
        <Table aria-label="Connections">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Connected</Table.Th>
              <Table.Th>Link</Table.Th>
              <Table.Th>Duration</Table.Th>
              <Table.Th>From</Table.Th>
              <Table.Th>Agent</Table.Th>
              <Table.Th>Closed because</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {page.items.map((c) => (
              <Table.Tr key={c.id}>
                <Table.Td>{when(c.connectedAt)}</Table.Td>
                <Table.Td>{linkLabels[c.link]}</Table.Td>
                <Table.Td>
                  {c.disconnectedAt ? (
                    duration(c.durationMs)
                  ) : (
                    <Badge color="green" variant="dot">
                      open
                    </Badge>
                  )}
                </Table.Td>
                <Table.Td>{c.remoteAddress ?? '—'}</Table.Td>
                <Table.Td>{c.agentVersion ?? '—'}</Table.Td>
                <Table.Td>{c.closeReason ?? (c.closeCode !== null ? String(c.closeCode) : '—')}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
    </QueryState>
  );
}

function DeviceSessions({ device }: { device: Device }) {
  const sessions = useQuery({
    queryKey: ['sessions', 'device', device.uuid],
    queryFn: async () =>
      data(await api.GET('/api/v1/sessions', { params: { query: { device: device.uuid, limit: 50 } } })),
  });
  return (
    <QueryState
      query={sessions}
      isEmpty={(p) => p.items.length === 0}
      empty={`No one has reached this device through fleetgate yet (ssh -J, fleetgate tunnel ${device.uuid.slice(0, 8)}…, the CONNECT proxy).`}
    >
      {(page) => (
        <Table aria-label="Sessions">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Who</Table.Th>
              <Table.Th>How</Table.Th>
              <Table.Th>Started</Table.Th>
              <Table.Th>Duration</Table.Th>
              <Table.Th>Bytes to / from</Table.Th>
              <Table.Th>Outcome</Table.Th>
              <Table.Th>
                <VisuallyHidden>Recording</VisuallyHidden>
              </Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {page.items.map((s) => (
              <Table.Tr key={s.id} data-session={s.id}>
                <Table.Td>{s.user.label}</Table.Td>
                <Table.Td>
                  {s.surface}
                  {s.port !== null ? ` :${s.port}` : ''}
                </Table.Td>
                <Table.Td>{ago(s.startedAt)}</Table.Td>
                <Table.Td>
                  {s.live ? (
                    <Badge color="green" variant="dot">
                      live
                    </Badge>
                  ) : (
                    duration(new Date(s.endedAt ?? s.startedAt).getTime() - new Date(s.startedAt).getTime())
                  )}
                </Table.Td>
                <Table.Td>
                  {bytes(s.bytesToDevice)} / {bytes(s.bytesFromDevice)}
                </Table.Td>
                <Table.Td>{s.outcome ?? '—'}</Table.Td>
                <Table.Td>{mayHaveRecording(s) && <ReplayLink session={s} />}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      )}
    </QueryState>
  );
}

function Credentials({ device }: { device: Device }) {
  const can = useCan();
  const keys = useQuery({
    queryKey: ['device', device.uuid, 'keys'],
    enabled: can('device.read'),
    queryFn: async () =>
      data(await api.GET('/api/v1/devices/{device}/keys', { params: { path: { device: device.uuid } } }))
        .items,
  });
  const authSets = useQuery({
    queryKey: ['auth-sets', 'device', device.id],
    queryFn: async () =>
      data(await api.GET('/api/v1/auth-sets', { params: { query: { deviceId: device.id, limit: 50 } } }))
        .items,
  });
  return (
    <Stack>
      <Title order={4}>Device keys</Title>
      <QueryState
        query={keys}
        isEmpty={(items) => items.length === 0}
        empty="No device key (the device uses a key pair, or was decommissioned)."
      >
        {(items) => (
          <Table aria-label="Device keys">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Origin</Table.Th>
                <Table.Th>Created</Table.Th>
                <Table.Th>Last used</Table.Th>
                <Table.Th>State</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {items.map((k) => (
                <Table.Tr key={k.id}>
                  <Table.Td>{k.origin}</Table.Td>
                  <Table.Td>{when(k.createdAt)}</Table.Td>
                  <Table.Td>{ago(k.lastUsedAt)}</Table.Td>
                  <Table.Td>
                    {k.revokedAt ? (
                      <Badge color="gray">revoked</Badge>
                    ) : (
                      <Badge color="green" variant="dot">
                        active
                      </Badge>
                    )}
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        )}
      </QueryState>
      <Title order={4}>Auth sets (identity + public key)</Title>
      <QueryState
        query={authSets}
        isEmpty={(items) => items.length === 0}
        empty="No auth sets (the device enrolled with a provisioning key)."
      >
        {(items) => (
          <Table aria-label="Auth sets">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Identity</Table.Th>
                <Table.Th>Key</Table.Th>
                <Table.Th>Status</Table.Th>
                <Table.Th>Last request</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {items.map((a) => (
                <Table.Tr key={a.id}>
                  <Table.Td>
                    <Code>{JSON.stringify(a.identity)}</Code>
                  </Table.Td>
                  <Table.Td>{a.keyType}</Table.Td>
                  <Table.Td>{a.status}</Table.Td>
                  <Table.Td>{ago(a.lastRequestAt)}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        )}
      </QueryState>
    </Stack>
  );
}

/**
 * What the agent said of the last variables it applied. Their revision is the time of the change that made the
 * set (0: no variable was ever set), which a person reads as a date rather than as a number.
 */
function appliedVariables(applied: NonNullable<Device['variablesApplied']>): string {
  const set =
    applied.revision > 0 ? `the set of ${when(new Date(applied.revision).toISOString())}` : 'no variables';
  return `${set}, applied ${ago(applied.at)}${applied.error ? ` — error: ${applied.error}` : ''}`;
}
