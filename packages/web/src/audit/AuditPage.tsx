import {
  Alert,
  Badge,
  Button,
  Code,
  Group,
  Stack,
  Switch,
  Table,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { Fragment, useState } from 'react';
import { type AuditEvent, api, data } from '../api/client.ts';
import { useCan, useOrg } from '../session/session.ts';
import { ago, when } from '../ui/format.ts';
import { Pager } from '../ui/Pager.tsx';
import { EmptyState, QueryState } from '../ui/QueryState.tsx';

const PAGE_SIZE = 50;
const COLUMNS = 7;

interface Filters {
  actor: string;
  action: string;
  resourceType: string;
  resourceId: string;
  /** datetime-local values (the browser's time zone), sent as ISO times */
  since: string;
  until: string;
}
const noFilters: Filters = { actor: '', action: '', resourceType: '', resourceId: '', since: '', until: '' };

/**
 * The organization's audit log: who did what, to which resource, from where, with what outcome. Server
 * administrators can switch to the server-wide events instead (those of no organization: sign-ins, failed ones
 * too, users, keys); where their role does not include the organization's log, they get only those.
 */
export function AuditPage() {
  const { me, membership } = useOrg();
  const can = useCan();
  if (me.serverAdmin && !can('audit.read')) return <AuditLog serverWideOnly />;
  if (!membership) {
    return (
      <Stack>
        <Title order={2}>Audit log</Title>
        <Text>You are not a member of any organization yet: ask an administrator to add you.</Text>
      </Stack>
    );
  }
  if (!can('audit.read')) {
    return (
      <Stack>
        <Title order={2}>Audit log</Title>
        <Alert color="gray" title="Not part of your role">
          Your role in {membership.orgName} ({membership.role}) does not include the audit log. Ask an owner
          or admin of the organization if you need it.
        </Alert>
      </Stack>
    );
  }
  return <AuditLog />;
}

function AuditLog({ serverWideOnly = false }: { serverWideOnly?: boolean }) {
  const { me, orgId } = useOrg();
  const [serverWideChosen, setServerWide] = useState(false);
  const serverWide = serverWideOnly || serverWideChosen;
  const [filters, setFilters] = useState<Filters>(noFilters);
  const [debounced] = useDebouncedValue(filters, 300);
  const [page, setPage] = useState(1);
  const [open, setOpen] = useState<Set<number>>(new Set());
  const setFilter = (key: keyof Filters, value: string) => {
    setFilters((old) => ({ ...old, [key]: value }));
    setPage(1);
  };
  const query = {
    ...(serverWide ? { scope: 'server' as const } : { orgId }),
    limit: PAGE_SIZE,
    page,
    ...(debounced.actor.trim() ? { actor: debounced.actor.trim() } : {}),
    ...(debounced.action.trim() ? { action: debounced.action.trim() } : {}),
    ...(debounced.resourceType.trim() ? { resourceType: debounced.resourceType.trim() } : {}),
    ...(debounced.resourceId.trim() ? { resourceId: debounced.resourceId.trim() } : {}),
    ...(isoOf(debounced.since) ? { since: isoOf(debounced.since) } : {}),
    ...(isoOf(debounced.until) ? { until: isoOf(debounced.until) } : {}),
  };
  const events = useQuery({
    queryKey: ['audit', query],
    enabled: serverWide || orgId !== undefined,
    placeholderData: keepPreviousData,
    queryFn: async () => data(await api.GET('/api/v1/audit', { params: { query } })),
  });
  const filtered = Object.values(filters).some((v) => v.trim() !== '');
  const toggle = (id: number) =>
    setOpen((old) => {
      const next = new Set(old);
      if (next.has(id)) next.delete(id);
      else next.add(id);
      return next;
    });

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>{serverWide ? 'Audit log: server-wide events' : 'Audit log'}</Title>
        {events.data && <Text c="dimmed">{events.data.total.toLocaleString()} events</Text>}
      </Group>
      {me.serverAdmin && !serverWideOnly && (
        <Switch
          label="Server-wide events"
          description="Instead of the organization's: the events of no organization, which only server administrators see. Sign-ins (failed ones too), users, API, service and SSH keys, recovery."
          checked={serverWideChosen}
          onChange={(e) => {
            setServerWide(e.currentTarget.checked);
            setPage(1);
          }}
        />
      )}
      {serverWideOnly && (
        <Text c="dimmed">
          Your role here does not include the organization's audit log; as a server administrator you see the
          server-wide events: sign-ins (failed ones too), users, keys and recovery.
        </Text>
      )}
      <Group align="flex-end" wrap="wrap">
        <TextInput
          label="Actor"
          placeholder="e-mail or user id"
          w={200}
          value={filters.actor}
          onChange={(e) => setFilter('actor', e.currentTarget.value)}
        />
        <TextInput
          label="Action"
          placeholder="e.g. device.update"
          w={170}
          value={filters.action}
          onChange={(e) => setFilter('action', e.currentTarget.value)}
        />
        <TextInput
          label="Resource type"
          placeholder="e.g. device, fleet"
          w={150}
          value={filters.resourceType}
          onChange={(e) => setFilter('resourceType', e.currentTarget.value)}
        />
        <TextInput
          label="Resource id"
          w={120}
          value={filters.resourceId}
          onChange={(e) => setFilter('resourceId', e.currentTarget.value)}
        />
        <TextInput
          label="Since"
          type="datetime-local"
          w={210}
          value={filters.since}
          onChange={(e) => setFilter('since', e.currentTarget.value)}
        />
        <TextInput
          label="Until"
          type="datetime-local"
          w={210}
          value={filters.until}
          onChange={(e) => setFilter('until', e.currentTarget.value)}
        />
        {filtered && (
          <Button
            variant="subtle"
            onClick={() => {
              setFilters(noFilters);
              setPage(1);
            }}
          >
            Clear filters
          </Button>
        )}
      </Group>
      <QueryState
        query={events}
        isEmpty={(result) => result.total === 0}
        empty={
          filtered ? (
            'No event matches these filters.'
          ) : serverWide ? (
            <EmptyState>
              <Text>Nothing recorded yet: sign-ins, users and keys show here.</Text>
              <Text size="sm">
                From a terminal: <Code>npx fleetgate audit --server-wide</Code>
              </Text>
            </EmptyState>
          ) : (
            <EmptyState>
              <Text>
                Nothing recorded yet: every change and every refused attempt in the organization shows here.
              </Text>
              <Text size="sm">
                From a terminal: <Code>npx fleetgate audit --org {orgId}</Code>
              </Text>
            </EmptyState>
          )
        }
      >
        {(result) => (
          <>
            <Table.ScrollContainer minWidth={900}>
              <Table aria-label="Audit events" striped>
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>Time</Table.Th>
                    <Table.Th>Actor</Table.Th>
                    <Table.Th>Action</Table.Th>
                    <Table.Th>Resource</Table.Th>
                    <Table.Th>Source IP</Table.Th>
                    <Table.Th>Outcome</Table.Th>
                    <Table.Th>Details</Table.Th>
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {result.items.map((event) => (
                    <Fragment key={event.id}>
                      <Table.Tr data-event={event.id}>
                        <Table.Td title={ago(event.at)} style={{ whiteSpace: 'nowrap' }}>
                          {when(event.at)}
                        </Table.Td>
                        <Table.Td>
                          {event.actor.label}
                          {event.actor.type !== 'user' && event.actor.label !== event.actor.type && (
                            <Text span size="xs" c="dimmed">
                              {' '}
                              ({event.actor.type})
                            </Text>
                          )}
                        </Table.Td>
                        <Table.Td>
                          <Code>{event.action}</Code>
                        </Table.Td>
                        <Table.Td>
                          {event.resourceType}
                          {event.resourceId !== null && (
                            <Text span c="dimmed">
                              {' '}
                              {event.resourceId}
                            </Text>
                          )}
                        </Table.Td>
                        <Table.Td>{event.sourceIp ?? '—'}</Table.Td>
                        <Table.Td>
                          <OutcomeBadge outcome={event.outcome} />
                        </Table.Td>
                        <Table.Td>
                          {event.details && Object.keys(event.details).length > 0 ? (
                            <Button
                              size="xs"
                              variant="subtle"
                              aria-expanded={open.has(event.id)}
                              aria-controls={`audit-details-${event.id}`}
                              aria-label={`${open.has(event.id) ? 'Hide' : 'Show'} details of ${event.action} at ${when(event.at)}`}
                              onClick={() => toggle(event.id)}
                            >
                              {open.has(event.id) ? 'Hide' : 'Show'}
                            </Button>
                          ) : (
                            '—'
                          )}
                        </Table.Td>
                      </Table.Tr>
                      {open.has(event.id) && (
                        <Table.Tr id={`audit-details-${event.id}`}>
                          <Table.Td colSpan={COLUMNS}>
                            <Code block>{JSON.stringify(event.details, null, 2)}</Code>
                          </Table.Td>
                        </Table.Tr>
                      )}
                    </Fragment>
                  ))}
                </Table.Tbody>
              </Table>
            </Table.ScrollContainer>
            <Pager total={result.total} pageSize={PAGE_SIZE} page={page} onChange={setPage} label="Pages" />
          </>
        )}
      </QueryState>
    </Stack>
  );
}

function OutcomeBadge({ outcome }: { outcome: AuditEvent['outcome'] }) {
  const color = outcome === 'success' ? 'green' : outcome === 'denied' ? 'red' : 'gray';
  return (
    <Badge color={color} variant="dot" data-outcome={outcome}>
      {outcome}
    </Badge>
  );
}

/** A datetime-local value (local time, no zone) as an ISO time; undefined when empty or not a time. */
function isoOf(local: string): string | undefined {
  if (!local) return undefined;
  const time = new Date(local);
  return Number.isNaN(time.getTime()) ? undefined : time.toISOString();
}
