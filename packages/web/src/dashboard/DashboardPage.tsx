import { Card, Group, SimpleGrid, Stack, Table, Text, Title } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { api, type DeviceStatus, data } from '../api/client.ts';
import { useCan, useOrg } from '../session/session.ts';
import { ago, count } from '../ui/format.ts';
import { AnchorLink, CardLink } from '../ui/links.tsx';
import { QueryState } from '../ui/QueryState.tsx';
import { StatusBadge, statuses } from '../ui/StatusBadge.tsx';

/** The organization at a glance: devices by status, fleets, the pending queue, live sessions, recent changes. */
export function DashboardPage() {
  const { orgId, membership } = useOrg();
  const can = useCan();
  const counts = useQuery({
    queryKey: ['dashboard', 'status-counts', orgId],
    enabled: orgId !== undefined,
    queryFn: async () => {
      const totals = await Promise.all(
        statuses.map(async (status) => {
          const page = data(
            await api.GET('/api/v1/devices', { params: { query: { orgId, status, limit: 1 } } }),
          );
          return [status, page.total] as const;
        }),
      );
      return Object.fromEntries(totals) as Record<DeviceStatus, number>;
    },
  });
  const pending = useQuery({
    queryKey: ['dashboard', 'pending', orgId],
    enabled: orgId !== undefined && can('device.authorize'),
    queryFn: async () =>
      data(await api.GET('/api/v1/auth-sets', { params: { query: { orgId, status: 'pending', limit: 1 } } }))
        .total,
  });
  const sessions = useQuery({
    queryKey: ['dashboard', 'live-sessions', orgId],
    enabled: orgId !== undefined,
    queryFn: async () =>
      data(await api.GET('/api/v1/sessions', { params: { query: { orgId, live: 'true', limit: 1 } } })).total,
  });
  const fleets = useQuery({
    queryKey: ['fleets', orgId, 'dashboard'],
    enabled: orgId !== undefined,
    queryFn: async () => data(await api.GET('/api/v1/fleets', { params: { query: { orgId, limit: 100 } } })),
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
      <QueryState query={counts}>
        {(byStatus) => (
          <SimpleGrid cols={{ base: 2, sm: 3, lg: 5 }}>
            {statuses.map((status) => (
              <CardLink
                key={status}
                withBorder
                to="/devices"
                search={{ status }}
                aria-label={`${byStatus[status]} ${status} devices`}
              >
                <Text size="xl" fw={700}>
                  {byStatus[status]}
                </Text>
                <StatusBadge status={status} />
              </CardLink>
            ))}
          </SimpleGrid>
        )}
      </QueryState>
      <SimpleGrid cols={{ base: 1, md: 2 }}>
        <Card withBorder>
          <Title order={3} size="h4" mb="xs">
            Waiting for you
          </Title>
          <Group>
            {can('device.authorize') && (
              <AnchorLink to="/pending">{pending.data ?? '…'} devices waiting for acceptance</AnchorLink>
            )}
            <AnchorLink to="/sessions">{sessions.data ?? '…'} live sessions</AnchorLink>
          </Group>
        </Card>
        <Card withBorder>
          <Title order={3} size="h4" mb="xs">
            Fleets
          </Title>
          <QueryState
            query={fleets}
            isEmpty={(page) => page.items.length === 0}
            empty={
              <Text>
                No fleets yet: <AnchorLink to="/fleets">create one</AnchorLink>.
              </Text>
            }
          >
            {(page) => (
              <Table>
                <Table.Tbody>
                  {page.items.map((fleet) => (
                    <Table.Tr key={fleet.id}>
                      <Table.Td>
                        <AnchorLink to="/fleets/$fleetId" params={{ fleetId: String(fleet.id) }}>
                          {fleet.name}
                        </AnchorLink>
                      </Table.Td>
                      <Table.Td ta="right">{count(fleet.deviceCount, 'device')}</Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            )}
          </QueryState>
        </Card>
      </SimpleGrid>
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
