import { Badge, Button, Code, Group, List, Select, Stack, Table, Text, UnstyledButton } from '@mantine/core';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Fragment, type ReactNode, useState } from 'react';
import { type Answer, api, type Device, data } from '../api/client.ts';
import { ago, count, duration, when } from '../ui/format.ts';
import { EmptyState, ErrorNotice, QueryState } from '../ui/QueryState.tsx';

type Run = Answer<'/api/v1/devices/{device}/diagnostics/{runId}', 'get'>;
type RunSummary = Answer<'/api/v1/devices/{device}/diagnostics', 'get'>['items'][number];
type Check = Run['checks'][number];
type CheckStatus = Check['status'];

const statusColors: Record<CheckStatus, string> = {
  ok: 'green',
  warning: 'yellow',
  failed: 'red',
  unavailable: 'gray',
  timed_out: 'orange',
};

export function CheckStatusBadge({ status }: { status: CheckStatus }) {
  return (
    <Badge color={statusColors[status]} variant="dot" data-check-status={status}>
      {status.replace('_', ' ')}
    </Badge>
  );
}

/** `8 ok · 1 warning · 1 unavailable`: the statuses that occur. */
function countsText(counts: RunSummary['counts']): string {
  return (Object.entries(counts) as [CheckStatus, number][])
    .filter(([, n]) => n > 0)
    .map(([status, n]) => `${n} ${status.replace('_', ' ')}`)
    .join(' · ');
}

/** How long a run took: tenths of seconds under a minute. */
function tookText(ms: number): string {
  return ms < 60_000 ? `${(ms / 1000).toFixed(1)} s` : duration(ms);
}

/**
 * A device's remote diagnostics: run them now (operators and above), the latest run (or one picked from the
 * history) as a table of checks with a status badge, summary and details each.
 */
export function DeviceDiagnostics({ device }: { device: Device }) {
  const queryClient = useQueryClient();
  const [picked, setPicked] = useState<number | undefined>(undefined);
  const history = useQuery({
    queryKey: ['device', device.uuid, 'diagnostics'],
    queryFn: async () =>
      data(
        await api.GET('/api/v1/devices/{device}/diagnostics', {
          params: { path: { device: device.uuid }, query: { limit: 50 } },
        }),
      ),
  });
  const shownId = picked ?? history.data?.items[0]?.id;
  const shown = useQuery({
    queryKey: ['device', device.uuid, 'diagnostics', shownId],
    enabled: shownId !== undefined,
    queryFn: async () =>
      data(
        await api.GET('/api/v1/devices/{device}/diagnostics/{runId}', {
          params: { path: { device: device.uuid, runId: shownId! } },
        }),
      ),
  });
  const run = useMutation({
    mutationFn: async () =>
      data(
        await api.POST('/api/v1/devices/{device}/diagnostics', {
          params: { path: { device: device.uuid } },
        }),
      ),
    onSuccess: async (ran) => {
      queryClient.setQueryData(['device', device.uuid, 'diagnostics', ran.id], ran);
      setPicked(ran.id);
      await queryClient.invalidateQueries({ queryKey: ['device', device.uuid, 'diagnostics'], exact: true });
    },
  });
  const offline = device.status !== 'online';
  return (
    <Stack>
      <Group justify="space-between" align="flex-end">
        <Text size="sm" c="dimmed" maw={640}>
          Read-only checks the device's agent runs on request: disk, memory, load, time sync, reaching this
          server (DNS, TCP), the agent's tunnel, network interfaces, failed systemd units and recent kernel
          messages.
        </Text>
        <Group>
          <RunPicker runs={history.data?.items ?? []} value={shownId} onChange={setPicked} />
          <Button onClick={() => run.mutate()} loading={run.isPending} disabled={offline}>
            Run diagnostics
          </Button>
        </Group>
      </Group>
      {run.isPending && (
        <Text size="sm" role="status">
          Running the checks on {device.name} (at most 20 s)…
        </Text>
      )}
      {offline && !run.isPending && (
        <Text size="sm" c="dimmed">
          {device.name} is {device.status}: diagnostics run only on a device that is online.
        </Text>
      )}
      {run.isError && <ErrorNotice error={run.error} title="Diagnostics did not run" />}
      <QueryState
        query={history}
        isEmpty={(page) => page.items.length === 0}
        empty="No diagnostics have been run on this device yet."
      >
        {() =>
          shownId === undefined ? null : (
            <QueryState query={shown}>{(report) => <RunView run={report} />}</QueryState>
          )
        }
      </QueryState>
    </Stack>
  );
}

function RunPicker({
  runs,
  value,
  onChange,
}: {
  runs: RunSummary[];
  value: number | undefined;
  onChange: (id: number) => void;
}) {
  if (runs.length < 2) return null;
  return (
    <Select
      label="Run shown"
      w={320}
      allowDeselect={false}
      data={runs.map((r, index) => ({
        value: String(r.id),
        label: `${index === 0 ? 'Latest: ' : ''}${when(r.startedAt)} — ${r.status.replace('_', ' ')}`,
      }))}
      value={value === undefined ? null : String(value)}
      onChange={(id) => id && onChange(Number(id))}
    />
  );
}

function RunView({ run }: { run: Run }) {
  const [open, setOpen] = useState<ReadonlySet<string>>(new Set());
  const toggle = (id: string) =>
    setOpen((current) => {
      const next = new Set(current);
      if (next.has(id)) next.delete(id);
      else next.add(id);
      return next;
    });
  return (
    <Stack gap="xs" data-run={run.id}>
      <Group gap="xs">
        <CheckStatusBadge status={run.status} />
        <Text size="sm">
          {`${countsText(run.counts)} — run ${ago(run.startedAt)} by ${run.requestedBy.label}, took ${tookText(run.durationMs)}; agent ${run.agentVersion}, checks v${run.version}`}
        </Text>
      </Group>
      <Table aria-label="Diagnostics" verticalSpacing="xs">
        <Table.Thead>
          <Table.Tr>
            <Table.Th>Check</Table.Th>
            <Table.Th w={150}>Status</Table.Th>
            <Table.Th>Summary</Table.Th>
            <Table.Th>Details</Table.Th>
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {run.checks.map((check) => (
            <Fragment key={check.id}>
              <Table.Tr data-check={check.id}>
                <Table.Td>{check.title}</Table.Td>
                <Table.Td>
                  <CheckStatusBadge status={check.status} />
                </Table.Td>
                <Table.Td>{check.summary}</Table.Td>
                <Table.Td>
                  {Object.keys(check.data).length > 0 && (
                    <UnstyledButton
                      onClick={() => toggle(check.id)}
                      aria-expanded={open.has(check.id)}
                      aria-label={`${open.has(check.id) ? 'Hide' : 'Show'} the details of ${check.title}`}
                    >
                      <Text size="sm" c="blue">
                        {open.has(check.id) ? 'Hide' : 'Show'}
                      </Text>
                    </UnstyledButton>
                  )}
                </Table.Td>
              </Table.Tr>
              {open.has(check.id) && (
                <Table.Tr>
                  <Table.Td colSpan={4}>
                    <Measurements value={check.data} depth={0} />
                  </Table.Td>
                </Table.Tr>
              )}
            </Fragment>
          ))}
        </Table.Tbody>
      </Table>
      <Text size="xs" c="dimmed">
        {count(run.checks.length, 'check')}, finished {when(run.finishedAt)}.
      </Text>
    </Stack>
  );
}

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * A check's measurements, whatever their shape (a device's answer, validated but not known field by field):
 * objects as label–value rows, lists of objects as tables, lists of values as lists, and anything deeper as JSON.
 */
function Measurements({ value, depth }: { value: unknown; depth: number }): ReactNode {
  if (value === null || value === undefined) return '—';
  if (typeof value !== 'object') return String(value);
  const primitives = Array.isArray(value) && value.every((item) => item === null || typeof item !== 'object');
  if (primitives) return value.length === 0 ? '—' : value.map(String).join(', ');
  if (depth >= 2) return <Code>{JSON.stringify(value)}</Code>;
  if (Array.isArray(value)) {
    if (value.length === 0) return '—';
    if (value.every(isPlainObject)) {
      const columns = [...new Set(value.flatMap((row) => Object.keys(row)))];
      return (
        <Table withTableBorder fz="xs" verticalSpacing={2}>
          <Table.Thead>
            <Table.Tr>
              {columns.map((c) => (
                <Table.Th key={c}>{c}</Table.Th>
              ))}
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {value.map((row, index) => (
              // biome-ignore lint/suspicious/noArrayIndexKey: rows of a report have no identity of their own
              <Table.Tr key={index}>
                {columns.map((c) => (
                  <Table.Td key={c}>
                    <Measurements value={row[c]} depth={depth + 1} />
                  </Table.Td>
                ))}
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      );
    }
    return (
      <List size="xs">
        {value.map((item, index) => (
          // biome-ignore lint/suspicious/noArrayIndexKey: items of a report have no identity of their own
          <List.Item key={index}>
            <Measurements value={item} depth={depth + 1} />
          </List.Item>
        ))}
      </List>
    );
  }
  const entries = Object.entries(value);
  if (entries.length === 0) return <EmptyState>No details</EmptyState>;
  return (
    <Table fz="xs" verticalSpacing={2}>
      <Table.Tbody>
        {entries.map(([key, inner]) => (
          <Table.Tr key={key}>
            <Table.Th w={180} scope="row">
              {key}
            </Table.Th>
            <Table.Td>
              <Measurements value={inner} depth={depth + 1} />
            </Table.Td>
          </Table.Tr>
        ))}
      </Table.Tbody>
    </Table>
  );
}
