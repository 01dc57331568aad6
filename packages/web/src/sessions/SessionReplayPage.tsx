import { Badge, Card, Code, Grid, Loader, Stack, Table, Text, Title } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { useParams } from '@tanstack/react-router';
import { lazy, type ReactNode, Suspense } from 'react';
import { ApiError, api, data, type Session } from '../api/client.ts';
import { useCan } from '../session/session.ts';
import { duration, when } from '../ui/format.ts';
import { AnchorLink } from '../ui/links.tsx';
import { EmptyState, ErrorNotice, QueryState } from '../ui/QueryState.tsx';
import { mayHaveRecording } from './ReplayLink.tsx';

// asciinema-player is fetched only when a recording is there to play.
const ReplayPlayer = lazy(() =>
  import('./ReplayPlayer.tsx').then((module) => ({ default: module.ReplayPlayer })),
);

/** An audit event's time of day (the session's date is in its facts). */
const clock = new Intl.DateTimeFormat(undefined, { timeStyle: 'medium' });

/** How many of a session's audit events are shown (a session has a handful: opened, recorded, ended, closed). */
const TRAIL_LIMIT = 100;

/** One recorded session: who, when, which device and how, its recording in a player, and its audit trail. */
export function SessionReplayPage() {
  const { sessionId } = useParams({ from: '/shell/sessions/$sessionId' });
  const session = useQuery({
    queryKey: ['sessions', sessionId],
    queryFn: async () =>
      data(await api.GET('/api/v1/sessions/{sessionId}', { params: { path: { sessionId } } })),
  });
  return <QueryState query={session}>{(s) => <SessionReplay session={s} />}</QueryState>;
}

function SessionReplay({ session }: { session: Session }) {
  const title = `${session.user.label} on ${session.device.name}`;
  return (
    <Stack>
      <Title order={2}>Session replay: {title}</Title>
      <Grid>
        <Grid.Col span={{ base: 12, lg: 8 }}>
          <Card withBorder>
            <Recording session={session} />
          </Card>
        </Grid.Col>
        <Grid.Col span={{ base: 12, lg: 4 }}>
          <Stack>
            <Card withBorder>
              <Title order={3} size="h4" mb="xs">
                Session
              </Title>
              <SessionFacts session={session} />
            </Card>
            <Card withBorder>
              <Title order={3} size="h4" mb="xs">
                Audit trail
              </Title>
              <AuditTrail session={session} />
            </Card>
          </Stack>
        </Grid.Col>
      </Grid>
    </Stack>
  );
}

function Recording({ session }: { session: Session }) {
  const label = `Recording of ${session.user.label}'s session to ${session.device.name}`;
  const recording = useQuery({
    queryKey: ['sessions', session.id, 'recording', session.live],
    enabled: mayHaveRecording(session),
    // A missing recording or a refusal stays so: asking again would not change the answer.
    retry: false,
    queryFn: async () =>
      data(
        await api.GET('/api/v1/sessions/{sessionId}/recording', {
          params: { path: { sessionId: session.id } },
          parseAs: 'text',
        }),
      ) as unknown as string,
  });
  if (!mayHaveRecording(session)) {
    return (
      <EmptyState>
        <Text>
          Only shell sessions (ssh, web terminal) are recorded: a {session.surface} session carries bytes
          fleetgate does not read.
        </Text>
      </EmptyState>
    );
  }
  if (recording.isError) {
    const error = recording.error;
    if (error instanceof ApiError && error.status === 404) {
      return (
        <EmptyState>
          <Text>This session was not recorded.</Text>
          <Text size="sm">
            Shell sessions are recorded while the organization records sessions (Settings, or{' '}
            <Code>PUT /api/v1/orgs/{'<id>'}/session-recording</Code>).
          </Text>
        </EmptyState>
      );
    }
    if (error instanceof ApiError && error.status === 403) {
      return (
        <ErrorNotice
          error={error}
          title="Recordings are for those who may open a shell on the device (operators and above)"
        />
      );
    }
    return <ErrorNotice error={error} />;
  }
  if (recording.isPending) return <Loader size="sm" aria-label="Loading the recording" />;
  return (
    <Stack gap="xs">
      {session.live && (
        <Text size="sm" c="dimmed">
          The session is still open: this is what was recorded until now.
        </Text>
      )}
      <Suspense fallback={<Loader size="sm" aria-label="Loading the player" />}>
        <ReplayPlayer cast={recording.data} label={label} />
      </Suspense>
    </Stack>
  );
}

function SessionFacts({ session: s }: { session: Session }) {
  const rows: [string, ReactNode][] = [
    ['Who', s.user.label],
    [
      'Device',
      <AnchorLink key="device" to="/devices/$device" params={{ device: s.device.uuid }}>
        {s.device.name}
      </AnchorLink>,
    ],
    ['Surface', s.surface],
    ['Target', <Code key="target">{s.target}</Code>],
    ['From', s.clientAddress ?? '—'],
    ['Started', when(s.startedAt)],
    ['Ended', s.live ? 'still open' : when(s.endedAt)],
    [
      'Duration',
      duration((s.endedAt ? new Date(s.endedAt).getTime() : Date.now()) - new Date(s.startedAt).getTime()),
    ],
    [
      'Outcome',
      s.live ? (
        <Badge key="live" color="green" variant="dot">
          live
        </Badge>
      ) : s.terminatedBy ? (
        `ended by ${s.terminatedBy.label}`
      ) : (
        (s.outcome ?? 'ended')
      ),
    ],
  ];
  return (
    <Table aria-label="Session facts">
      <Table.Tbody>
        {rows.map(([label, value]) => (
          <Table.Tr key={label}>
            <Table.Th w={100} scope="row">
              {label}
            </Table.Th>
            <Table.Td>{value}</Table.Td>
          </Table.Tr>
        ))}
      </Table.Tbody>
    </Table>
  );
}

/** The session's audit events, oldest first: whoever reads the audit log sees them all, others their own. */
function AuditTrail({ session }: { session: Session }) {
  const can = useCan();
  const trail = useQuery({
    queryKey: ['audit', 'session', session.id, session.live],
    queryFn: async () =>
      data(
        await api.GET('/api/v1/audit', { params: { query: { session: session.id, limit: TRAIL_LIMIT } } }),
      ),
  });
  const ownOnly = !can('audit.read');
  return (
    <QueryState
      query={trail}
      isEmpty={(page) => page.total === 0}
      empty={
        ownOnly
          ? 'The audit log of the organization is for its admins: you see your own actions only.'
          : 'No audit event names this session.'
      }
    >
      {(page) => (
        <Stack gap="xs">
          {ownOnly && (
            <Text size="sm" c="dimmed">
              Your own actions only: the organization's audit log is for its admins.
            </Text>
          )}
          <Table aria-label="Audit trail" fz="sm">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>When</Table.Th>
                <Table.Th>Event</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {[...page.items].reverse().map((event) => (
                <Table.Tr key={event.id}>
                  <Table.Td title={when(event.at)} style={{ whiteSpace: 'nowrap' }}>
                    {clock.format(new Date(event.at))}
                  </Table.Td>
                  <Table.Td>
                    <Code>{event.action}</Code>
                    {event.outcome !== 'success' && (
                      <Badge ml={4} color="red" variant="light">
                        {event.outcome}
                      </Badge>
                    )}
                    <Text size="xs" c="dimmed">
                      by {event.actor.label}
                      {typeof event.details?.outcome === 'string' ? ` — ${event.details.outcome}` : ''}
                    </Text>
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
          {page.total > page.items.length && (
            <Text size="sm" c="dimmed">
              The {page.items.length} newest of {page.total} events.
            </Text>
          )}
        </Stack>
      )}
    </QueryState>
  );
}
