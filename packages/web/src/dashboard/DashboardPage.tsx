import { Card, Group, SimpleGrid, Skeleton, Stack, Table, Text, Title } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { lazy, Suspense, useMemo } from 'react';
import { api, type Dashboard, data } from '../api/client.ts';
import { useCan, useOrg } from '../session/session.ts';
import { ago, count } from '../ui/format.ts';
import { AnchorLink, CardLink } from '../ui/links.tsx';
import { QueryState } from '../ui/QueryState.tsx';
import { StatusCount, statuses } from '../ui/StatusBadge.tsx';

// uPlot is loaded after the page shows: the sign-in + dashboard first load stays within its budget.
const TimeChart = lazy(() => import('../ui/TimeChart.tsx').then((m) => ({ default: m.TimeChart })));

/** The organization at a glance: devices by status, fleets, the pending queue, live sessions, recent changes. */
export function DashboardPage() {
  const { orgId, membership } = useOrg();
  const can = useCan();
  // One request for every figure (GET /api/v1/orgs/{orgId}/dashboard), fetched again on every presence event.
  const dashboard = useQuery({
    queryKey: ['dashboard', 'figures', orgId],
    enabled: orgId !== undefined,
    queryFn: async () =>
      data(await api.GET('/api/v1/orgs/{orgId}/dashboard', { params: { path: { orgId: orgId! } } })),
  });
  const audit = useQuery({
    queryKey: ['dashboard', 'audit', orgId],
    enabled: orgId !== undefined && can('audit.read'),
    queryFn: async () => data(await api.GET('/api/v1/audit', { params: { query: { orgId, limit: 8 } } })),
  });

  if (!membership) {
    return <Text>You are not a member of any organization yet: ask an administrator to add you.</Text>;
  }
  return (
    <Stack>
      <Title order={2}>Dashboard</Title>
      <QueryState query={dashboard}>
        {(figures) => <Figures figures={figures} canAccept={can('device.authorize')} />}
      </QueryState>
      {can('audit.read') && (
        <Card withBorder>
          <Group justify="space-between" mb="xs">
            <Title order={3} size="h4">
              Recent changes
            </Title>
            <AnchorLink to="/audit">Audit log</AnchorLink>
          </Group>
          <QueryState query={audit} isEmpty={(page) => page.items.length === 0} empty="Nothing happened yet.">
            {(page) => (
              <Table>
                <Table.Tbody>
                  {page.items.map((event) => (
                    <Table.Tr key={event.id}>
                      <Table.Td>{ago(event.at)}</Table.Td>
                      <Table.Td>{event.actor.label}</Table.Td>
                      <Table.Td>
                        <code>{event.action}</code>
                      </Table.Td>
                      <Table.Td>{event.outcome}</Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            )}
          </QueryState>
        </Card>
      )}
    </Stack>
  );
}

/** The figures of `GET /api/v1/orgs/{orgId}/dashboard`: counts by status, activity over 24 h, fleets. */
function Figures({ figures, canAccept }: { figures: Dashboard; canAccept: boolean }) {
  const connects = figures.connections.reduce((n, bucket) => n + bucket.connects, 0);
  const disconnects = figures.connections.reduce((n, bucket) => n + bucket.disconnects, 0);
  const chart = useMemo(
    () => ({
      times: figures.connections.map((bucket) => Date.parse(bucket.start) / 1000),
      // The whole 24 hours, to the end of the current hour's bucket.
      window: [
        Date.parse(figures.connections[0]?.start ?? figures.at) / 1000,
        Date.parse(figures.connections.at(-1)?.start ?? figures.at) / 1000 + 3600,
      ] as [number, number],
      series: [
        { label: 'connects', values: figures.connections.map((b) => b.connects), color: '#2f9e44' },
        { label: 'disconnects', values: figures.connections.map((b) => b.disconnects), color: '#e8590c' },
      ],
    }),
    [figures.connections, figures.at],
  );
  const byStatus = figures.devices.total;
  return (
    <Stack>
      <SimpleGrid cols={{ base: 2, sm: 3, lg: 5 }}>
        {statuses.map((status) => (
          <CardLink
            key={status}
            withBorder
            to="/devices"
            search={{ status }}
            aria-label={`${byStatus[status]} ${status} devices`}
          >
            <StatusCount status={status} count={byStatus[status]} />
          </CardLink>
        ))}
      </SimpleGrid>
      <SimpleGrid cols={{ base: 1, md: 2 }}>
        <Card withBorder>
          <Group justify="space-between" mb="xs">
            <Title order={3} size="h4">
              Connections, last 24 hours
            </Title>
            <Text size="sm" c="dimmed" data-testid="connection-totals">
              {count(connects, 'connect')}, {count(disconnects, 'disconnect')}
            </Text>
          </Group>
          <Suspense fallback={<Skeleton height={200} />}>
            <TimeChart
              label={`Connects and disconnects per hour over the last 24 hours: ${connects} connects, ${disconnects} disconnects`}
              times={chart.times}
              series={chart.series}
              timeRange={chart.window}
              bars
            />
          </Suspense>
        </Card>
        <Card withBorder>
          <Title order={3} size="h4" mb="xs">
            Waiting for you
          </Title>
          <Stack gap="xs">
            {canAccept && (
              <AnchorLink to="/pending">
                {count(figures.pendingAuthSets, 'device')} waiting for acceptance
              </AnchorLink>
            )}
            <AnchorLink to="/sessions">{count(figures.liveSessions, 'live session')}</AnchorLink>
            {figures.failedDeviceAuthentications !== null && (
              <Text
                data-testid="failed-device-authentications"
                title="Refused device registrations, key exchanges and auth requests in the audit log"
              >
                {count(figures.failedDeviceAuthentications, 'failed device authentication')} in 24 h
              </Text>
            )}
          </Stack>
        </Card>
      </SimpleGrid>
      <Card withBorder>
        <Title order={3} size="h4" mb="xs">
          Fleets
        </Title>
        {figures.devices.fleets.length === 0 ? (
          <Text>
            No fleets yet: <AnchorLink to="/fleets">create one</AnchorLink>.
          </Text>
        ) : (
          <Table>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Fleet</Table.Th>
                {statuses.map((status) => (
                  <Table.Th key={status} ta="right">
                    {status}
                  </Table.Th>
                ))}
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {figures.devices.fleets.map((fleet) => (
                <Table.Tr key={fleet.fleetId}>
                  <Table.Td>
                    <AnchorLink to="/fleets/$fleetId" params={{ fleetId: String(fleet.fleetId) }}>
                      {fleet.name}
                    </AnchorLink>
                  </Table.Td>
                  {statuses.map((status) => (
                    <Table.Td key={status} ta="right">
                      {fleet.counts[status]}
                    </Table.Td>
                  ))}
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        )}
      </Card>
    </Stack>
  );
}
