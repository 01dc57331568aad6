import {
  Badge,
  Button,
  Code,
  Group,
  SegmentedControl,
  Select,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
  VisuallyHidden,
} from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { notifications } from '@mantine/notifications';
import { keepPreviousData, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { ApiError, api, data, type Session } from '../api/client.ts';
import { useCan, useOrg } from '../session/session.ts';
import { Confirm } from '../ui/Confirm.tsx';
import { ago, bytes, duration, when } from '../ui/format.ts';
import { AnchorLink } from '../ui/links.tsx';
import { Pager } from '../ui/Pager.tsx';
import { EmptyState, ErrorNotice, QueryState } from '../ui/QueryState.tsx';
import { mayHaveRecording, ReplayLink } from './ReplayLink.tsx';

const PAGE_SIZE = 50;
/** Live sessions' byte counts and durations move on their own: fetch them again this often (ms). */
const LIVE_REFRESH = 15_000;

type Shown = 'live' | 'ended' | 'all';
const shownChoices: { value: Shown; label: string }[] = [
  { value: 'live', label: 'Live' },
  { value: 'ended', label: 'Ended' },
  { value: 'all', label: 'All' },
];
const surfaces = [
  { value: 'tunnel', label: 'tunnel' },
  { value: 'ssh', label: 'ssh (gateway)' },
  { value: 'openssh', label: 'openssh (bastion)' },
  { value: 'connect', label: 'connect (proxy)' },
  { value: 'terminal', label: 'terminal (web)' },
  { value: 'web', label: 'web page (device)' },
  { value: 'diagnostics', label: 'diagnostics' },
  { value: 'vnc', label: 'vnc (web)' },
  { value: 'files', label: 'files (transfers)' },
  { value: 'mender-cli', label: 'mender-cli (terminal)' },
];

/** People's sessions to the organization's devices: live ones (which admins may end) and the record of past ones. */
export function SessionsPage() {
  const { orgId, membership } = useOrg();
  const can = useCan();
  const queryClient = useQueryClient();
  const [shown, setShown] = useState<Shown>('live');
  const [surface, setSurface] = useState<string | null>(null);
  const [userText, setUserText] = useState('');
  const [user] = useDebouncedValue(userText.trim(), 300);
  const [page, setPage] = useState(1);
  const [ending, setEnding] = useState<Session>();
  const query = {
    orgId,
    limit: PAGE_SIZE,
    page,
    ...(shown === 'all' ? {} : { live: shown === 'live' ? ('true' as const) : ('false' as const) }),
    ...(surface ? { surface } : {}),
    ...(user ? { user } : {}),
  };
  const sessions = useQuery({
    queryKey: ['sessions', query],
    enabled: orgId !== undefined,
    placeholderData: keepPreviousData,
    refetchInterval: shown === 'ended' ? false : LIVE_REFRESH,
    queryFn: async () => data(await api.GET('/api/v1/sessions', { params: { query } })),
  });
  const end = useMutation({
    mutationFn: async (session: Session) =>
      data(
        await api.POST('/api/v1/sessions/{sessionId}/terminate', {
          params: { path: { sessionId: session.id } },
        }),
      ),
    onSuccess: async (session) => {
      setEnding(undefined);
      notifications.show({
        color: 'green',
        message: `Ended ${session.user.label}'s ${session.surface} session to ${session.device.name}`,
      });
      await queryClient.invalidateQueries({ queryKey: ['sessions'] });
      await queryClient.invalidateQueries({ queryKey: ['dashboard'] });
    },
    onError: async (error) => {
      // 409: it ended on its own meanwhile; the list shows that once fetched again.
      if (error instanceof ApiError && error.status === 409) {
        setEnding(undefined);
        notifications.show({ color: 'gray', message: error.message });
        await queryClient.invalidateQueries({ queryKey: ['sessions'] });
      }
    },
  });

  if (!membership) {
    return (
      <Stack>
        <Title order={2}>Sessions</Title>
        <Text>You are not a member of any organization yet: ask an administrator to add you.</Text>
      </Stack>
    );
  }
  const filtered = Boolean(surface || user);
  const canEnd = can('session.terminate');
  return (
    <Stack>
      <Group justify="space-between">
        <Title order={2}>Sessions</Title>
        {sessions.data && (
          <Text c="dimmed">
            {sessions.data.total.toLocaleString()} {shown === 'all' ? '' : `${shown} `}sessions
          </Text>
        )}
      </Group>
      <Group align="flex-end" wrap="wrap">
        <SegmentedControl
          aria-label="Which sessions"
          data={shownChoices}
          value={shown}
          onChange={(value) => {
            setShown(value as Shown);
            setPage(1);
          }}
        />
        <Select
          label="Surface"
          placeholder="any"
          clearable
          w={190}
          data={surfaces}
          value={surface}
          onChange={(value) => {
            setSurface(value);
            setPage(1);
          }}
        />
        <TextInput
          label="Person"
          placeholder="e-mail"
          w={220}
          value={userText}
          onChange={(e) => {
            setUserText(e.currentTarget.value);
            setPage(1);
          }}
        />
      </Group>
      <QueryState
        query={sessions}
        isEmpty={(result) => result.total === 0}
        empty={<NoSessions shown={shown} filtered={filtered} />}
      >
        {(result) => (
          <>
            <Table.ScrollContainer minWidth={1000}>
              <Table aria-label="Sessions" striped>
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>Who</Table.Th>
                    <Table.Th>Device</Table.Th>
                    <Table.Th>Surface</Table.Th>
                    <Table.Th>Port / target</Table.Th>
                    <Table.Th>Client address</Table.Th>
                    <Table.Th>Started</Table.Th>
                    <Table.Th>Duration</Table.Th>
                    <Table.Th>To device</Table.Th>
                    <Table.Th>From device</Table.Th>
                    <Table.Th>Outcome</Table.Th>
                    <Table.Th>
                      <VisuallyHidden>Actions</VisuallyHidden>
                    </Table.Th>
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {result.items.map((s) => (
                    <Table.Tr key={s.id} data-session={s.id}>
                      <Table.Td>{s.user.label}</Table.Td>
                      <Table.Td>
                        <AnchorLink to="/devices/$device" params={{ device: s.device.uuid }}>
                          {s.device.name}
                        </AnchorLink>
                      </Table.Td>
                      <Table.Td>{s.surface}</Table.Td>
                      <Table.Td>{s.port !== null ? s.port : <Code>{s.target}</Code>}</Table.Td>
                      <Table.Td>{s.clientAddress ?? '—'}</Table.Td>
                      <Table.Td title={when(s.startedAt)}>{ago(s.startedAt)}</Table.Td>
                      <Table.Td>
                        {duration(
                          (s.endedAt ? new Date(s.endedAt).getTime() : Date.now()) -
                            new Date(s.startedAt).getTime(),
                        )}
                      </Table.Td>
                      <Table.Td>{bytes(s.bytesToDevice)}</Table.Td>
                      <Table.Td>{bytes(s.bytesFromDevice)}</Table.Td>
                      <Table.Td>
                        <SessionOutcome session={s} />
                      </Table.Td>
                      <Table.Td>
                        <Group gap={4} wrap="nowrap">
                          {s.live && canEnd && (
                            <Button
                              size="xs"
                              color="red"
                              variant="light"
                              aria-label={`End ${s.user.label}'s session to ${s.device.name}`}
                              onClick={() => setEnding(s)}
                            >
                              End
                            </Button>
                          )}
                          {mayHaveRecording(s) && (
                            <>
                              <ReplayLink session={s} />
                              <RecordingDownload session={s} />
                            </>
                          )}
                        </Group>
                      </Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            </Table.ScrollContainer>
            <Pager total={result.total} pageSize={PAGE_SIZE} page={page} onChange={setPage} label="Pages" />
          </>
        )}
      </QueryState>
      <Confirm
        opened={ending !== undefined}
        title={`End ${ending?.user.label ?? ''}'s session to ${ending?.device.name ?? ''}?`}
        confirmLabel="End session"
        busy={end.isPending}
        onCancel={() => setEnding(undefined)}
        onConfirm={() => ending && end.mutate(ending)}
      >
        <Stack gap="xs">
          <Text>
            The {ending?.surface} connection of {ending?.user.label} to {ending?.device.name}
            {ending?.port !== null && ending?.port !== undefined ? ` (port ${ending.port})` : ''} is reset at
            once, on both ends: whatever was running through it is cut off, unsaved work in a shell included.
            They can connect again if their role allows it.
          </Text>
          {end.isError && !(end.error instanceof ApiError && end.error.status === 409) && (
            <ErrorNotice error={end.error} />
          )}
        </Stack>
      </Confirm>
    </Stack>
  );
}

function SessionOutcome({ session }: { session: Session }) {
  if (session.live) {
    return (
      <Badge color="green" variant="dot">
        live
      </Badge>
    );
  }
  const color = session.terminatedBy ? 'red' : session.outcome === 'closed' ? 'gray' : 'yellow';
  return (
    <Badge color={color} variant="dot" title={session.outcome ?? undefined} style={{ textTransform: 'none' }}>
      {session.terminatedBy ? `ended by ${session.terminatedBy.label}` : (session.outcome ?? 'ended')}
    </Badge>
  );
}

/**
 * Downloads a shell session's recording (asciicast v2). The session list does not say whether one exists, so the
 * request is made on click and a missing recording is reported instead of saving the server's error as a file.
 */
function RecordingDownload({ session }: { session: Session }) {
  const download = useMutation({
    mutationFn: async () =>
      data(
        await api.GET('/api/v1/sessions/{sessionId}/recording', {
          params: { path: { sessionId: session.id } },
          parseAs: 'blob',
        }),
      ),
    onSuccess: (recording) => {
      const url = URL.createObjectURL(recording);
      const link = document.createElement('a');
      link.href = url;
      link.download = `session-${session.id}.cast`;
      link.click();
      URL.revokeObjectURL(url);
    },
    onError: (error) =>
      notifications.show({
        color: error instanceof ApiError && error.status === 404 ? 'gray' : 'red',
        message:
          error instanceof ApiError && error.status === 404
            ? `No recording of ${session.user.label}'s session to ${session.device.name}: ${error.message}`
            : error.message,
      }),
  });
  return (
    <Button
      size="xs"
      variant="subtle"
      loading={download.isPending}
      aria-label={`Download the recording of ${session.user.label}'s session to ${session.device.name}`}
      onClick={() => download.mutate()}
    >
      Recording
    </Button>
  );
}

function NoSessions({ shown, filtered }: { shown: Shown; filtered: boolean }) {
  if (filtered) return <Text>No session matches these filters.</Text>;
  if (shown === 'live') {
    return (
      <EmptyState>
        <Text>No one is connected to a device right now.</Text>
        <Text size="sm">Past sessions are under Ended.</Text>
      </EmptyState>
    );
  }
  return (
    <EmptyState>
      <Text>No one has reached a device through fleetgate yet.</Text>
      <Text size="sm">
        Sessions appear here when someone opens a tunnel (
        <Code>npx fleetgate tunnel {'<device>'} 8022:22</Code>
        ), connects over SSH or uses the CONNECT proxy. From a terminal:{' '}
        <Code>npx fleetgate sessions ls</Code>
      </Text>
    </EmptyState>
  );
}
