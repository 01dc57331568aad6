import {
  Badge,
  Button,
  Card,
  Code,
  Group,
  NumberInput,
  Stack,
  Switch,
  Table,
  Text,
  TextInput,
  Title,
  VisuallyHidden,
} from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { type Answer, api, data } from '../api/client.ts';
import { useCan, useOrg } from '../session/session.ts';
import { Confirm } from '../ui/Confirm.tsx';
import { when } from '../ui/format.ts';
import { ErrorNotice, QueryState } from '../ui/QueryState.tsx';

type Organization = Answer<'/api/v1/orgs/{orgId}', 'get'>;
type DeviceLimit = Answer<'/api/v1/orgs/{orgId}/device-limit', 'get'>;
type DeviceType = Answer<'/api/v1/device-types', 'get'>['items'][number];

/** The current organization's settings: name, device limit, session recording, device types. */
export function SettingsPage() {
  const { orgId, membership } = useOrg();
  if (!membership || orgId === undefined) {
    return (
      <Stack>
        <Title order={2}>Settings</Title>
        <Text>You are not a member of any organization yet: ask an administrator to add you.</Text>
      </Stack>
    );
  }
  return (
    <Stack>
      <Title order={2}>Settings of {membership.orgName}</Title>
      <OrganizationName orgId={orgId} />
      <DeviceLimitSetting orgId={orgId} />
      <SessionRecording orgId={orgId} />
      <DeviceTypes orgId={orgId} />
    </Stack>
  );
}

function OrganizationName({ orgId }: { orgId: number }) {
  const can = useCan();
  const org = useQuery({
    queryKey: ['org', orgId],
    queryFn: async () => data(await api.GET('/api/v1/orgs/{orgId}', { params: { path: { orgId } } })),
  });
  return (
    <Card withBorder>
      <Title order={3} size="h4" mb="xs">
        Organization
      </Title>
      <QueryState query={org}>
        {(organization) =>
          can('org.update') ? (
            <RenameForm key={organization.updatedAt} organization={organization} />
          ) : (
            <Stack gap={4}>
              <Text>
                <strong>{organization.name}</strong> <Code>{organization.slug}</Code>
              </Text>
              <Text size="sm" c="dimmed">
                Created {when(organization.createdAt)}
              </Text>
            </Stack>
          )
        }
      </QueryState>
    </Card>
  );
}

function RenameForm({ organization }: { organization: Organization }) {
  const queryClient = useQueryClient();
  const [name, setName] = useState(organization.name);
  const rename = useMutation({
    mutationFn: async () =>
      data(
        await api.PATCH('/api/v1/orgs/{orgId}', {
          params: { path: { orgId: organization.id } },
          body: { name: name.trim() },
        }),
      ),
    onSuccess: async (updated) => {
      notifications.show({ color: 'green', message: `The organization is now called ${updated.name}` });
      queryClient.setQueryData(['org', updated.id], updated);
      // The name shows in the header's switcher, which reads it from /api/v1/me.
      await queryClient.invalidateQueries({ queryKey: ['me'] });
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    rename.mutate();
  };
  return (
    <form onSubmit={submit}>
      <Stack gap="sm" maw={420}>
        <TextInput
          label="Name"
          required
          description={`Short name (in URLs and the CLI): ${organization.slug}`}
          value={name}
          onChange={(e) => setName(e.currentTarget.value)}
        />
        {rename.isError && <ErrorNotice error={rename.error} />}
        <Group>
          <Button
            type="submit"
            loading={rename.isPending}
            disabled={!name.trim() || name.trim() === organization.name}
          >
            Rename
          </Button>
        </Group>
      </Stack>
    </form>
  );
}

function DeviceLimitSetting({ orgId }: { orgId: number }) {
  const can = useCan();
  const limit = useQuery({
    queryKey: ['org', orgId, 'device-limit'],
    queryFn: async () =>
      data(await api.GET('/api/v1/orgs/{orgId}/device-limit', { params: { path: { orgId } } })),
  });
  return (
    <Card withBorder>
      <Title order={3} size="h4" mb="xs">
        Device limit
      </Title>
      <Text size="sm" c="dimmed" mb="xs">
        How many devices the organization may accept. A device beyond it waits under Pending devices until the
        limit is raised or another device is rejected.
      </Text>
      <QueryState query={limit}>
        {(current) =>
          can('org.update') ? (
            <DeviceLimitForm key={String(current.limit)} current={current} />
          ) : (
            <Text>
              {current.accepted} accepted
              {current.limit === null ? ', no limit' : ` of at most ${current.limit}`}
            </Text>
          )
        }
      </QueryState>
    </Card>
  );
}

function DeviceLimitForm({ current }: { current: DeviceLimit }) {
  const queryClient = useQueryClient();
  const [value, setValue] = useState<number | string>(current.limit ?? '');
  const next = typeof value === 'number' ? value : null;
  const save = useMutation({
    mutationFn: async () =>
      data(
        await api.PUT('/api/v1/orgs/{orgId}/device-limit', {
          params: { path: { orgId: current.orgId } },
          body: { limit: next },
        }),
      ),
    onSuccess: async (updated) => {
      notifications.show({
        color: 'green',
        message: updated.limit === null ? 'No device limit now' : `Device limit set to ${updated.limit}`,
      });
      queryClient.setQueryData(['org', updated.orgId, 'device-limit'], updated);
      await queryClient.invalidateQueries({ queryKey: ['dashboard'] });
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    save.mutate();
  };
  return (
    <form onSubmit={submit}>
      <Stack gap="sm" maw={420}>
        <Text>
          {current.accepted} devices accepted
          {current.limit === null ? ', no limit.' : ` of at most ${current.limit}.`}
        </Text>
        <NumberInput
          label="Most devices accepted"
          description="Leave empty for no limit; 0 accepts none."
          placeholder="no limit"
          min={0}
          allowDecimal={false}
          allowNegative={false}
          value={value}
          onChange={setValue}
        />
        {next !== null && next < current.accepted && (
          <Text size="sm" c="orange">
            Lower than the {current.accepted} devices already accepted: they stay, but no more are accepted
            until the count falls below {next}.
          </Text>
        )}
        {save.isError && <ErrorNotice error={save.error} />}
        <Group>
          <Button type="submit" loading={save.isPending} disabled={next === current.limit}>
            Save limit
          </Button>
        </Group>
      </Stack>
    </form>
  );
}

function SessionRecording({ orgId }: { orgId: number }) {
  const can = useCan();
  const queryClient = useQueryClient();
  const setting = useQuery({
    queryKey: ['org', orgId, 'session-recording'],
    queryFn: async () =>
      data(await api.GET('/api/v1/orgs/{orgId}/session-recording', { params: { path: { orgId } } })),
  });
  const save = useMutation({
    mutationFn: async (enabled: boolean) =>
      data(
        await api.PUT('/api/v1/orgs/{orgId}/session-recording', {
          params: { path: { orgId } },
          body: { enabled },
        }),
      ),
    onSuccess: (updated) => {
      queryClient.setQueryData(['org', orgId, 'session-recording'], updated);
      notifications.show({
        color: 'green',
        message: updated.enabled
          ? 'Shell sessions started from now on are recorded'
          : 'Shell sessions are no longer recorded; past recordings stay',
      });
    },
  });
  return (
    <Card withBorder>
      <Title order={3} size="h4" mb="xs">
        Session recording
      </Title>
      <QueryState query={setting}>
        {(current) => (
          <Stack gap="xs">
            <Switch
              label="Record shell sessions through the SSH gateway"
              description="Recordings (asciicast v2) can be downloaded from the Sessions page and replayed with npx fleetgate sessions play <id> or asciinema. Tunnels and the CONNECT proxy are not recorded."
              checked={save.isPending ? save.variables : current.enabled}
              disabled={!can('org.update') || save.isPending}
              onChange={(e) => save.mutate(e.currentTarget.checked)}
            />
            {!can('org.update') && (
              <Text size="sm" c="dimmed">
                Only owners and admins change this.
              </Text>
            )}
            {save.isError && <ErrorNotice error={save.error} />}
          </Stack>
        )}
      </QueryState>
    </Card>
  );
}

function DeviceTypes({ orgId }: { orgId: number }) {
  const can = useCan();
  const queryClient = useQueryClient();
  const types = useQuery({
    queryKey: ['device-types', orgId],
    queryFn: async () => data(await api.GET('/api/v1/device-types', { params: { query: { orgId } } })).items,
  });
  const [deleting, setDeleting] = useState<DeviceType>();
  const manage = can('device_type.manage');
  const remove = useMutation({
    mutationFn: async (type: DeviceType) =>
      api.DELETE('/api/v1/device-types/{typeId}', { params: { path: { typeId: type.id! } } }),
    onSuccess: async (_answer, type) => {
      setDeleting(undefined);
      notifications.show({ color: 'green', message: `Deleted the device type ${type.slug}` });
      await queryClient.invalidateQueries({ queryKey: ['device-types', orgId] });
    },
  });
  return (
    <Card withBorder>
      <Title order={3} size="h4" mb="xs">
        Device types
      </Title>
      <Text size="sm" c="dimmed" mb="xs">
        Hardware models devices report and fleets default to: the built-in ones, and this organization's own.
      </Text>
      <QueryState
        query={types}
        isEmpty={(items) => items.length === 0}
        empty={
          <Text size="sm">
            No device types yet: add one below, or with{' '}
            <Code>
              npx fleetgate device-types create {'<slug>'} --org {orgId} --name {'<name>'} --arch aarch64
            </Code>
            .
          </Text>
        }
      >
        {(items) => (
          <Table.ScrollContainer minWidth={600}>
            <Table aria-label="Device types" striped>
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Name</Table.Th>
                  <Table.Th>Slug</Table.Th>
                  <Table.Th>Architecture</Table.Th>
                  <Table.Th>Kind</Table.Th>
                  {manage && (
                    <Table.Th>
                      <VisuallyHidden>Actions</VisuallyHidden>
                    </Table.Th>
                  )}
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {[...items]
                  .sort((a, b) => Number(a.builtin) - Number(b.builtin) || a.name.localeCompare(b.name))
                  .map((type) => (
                    <Table.Tr key={type.id ?? `builtin-${type.slug}`}>
                      <Table.Td>{type.name}</Table.Td>
                      <Table.Td>
                        <Code>{type.slug}</Code>
                      </Table.Td>
                      <Table.Td>{type.arch}</Table.Td>
                      <Table.Td>
                        {type.builtin ? (
                          <Badge color="gray" variant="dot">
                            built-in
                          </Badge>
                        ) : (
                          <Badge color="teal" variant="dot">
                            custom
                          </Badge>
                        )}
                      </Table.Td>
                      {manage && (
                        <Table.Td>
                          {!type.builtin && type.id !== null && (
                            <Button
                              size="xs"
                              variant="subtle"
                              color="red"
                              aria-label={`Delete the device type ${type.slug}`}
                              onClick={() => setDeleting(type)}
                            >
                              Delete
                            </Button>
                          )}
                        </Table.Td>
                      )}
                    </Table.Tr>
                  ))}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
        )}
      </QueryState>
      {manage && <AddDeviceType orgId={orgId} />}
      <Confirm
        opened={deleting !== undefined}
        title={`Delete the device type ${deleting?.slug ?? ''}?`}
        confirmLabel="Delete device type"
        busy={remove.isPending}
        onCancel={() => setDeleting(undefined)}
        onConfirm={() => deleting && remove.mutate(deleting)}
      >
        <Stack gap="xs">
          <Text>
            {deleting?.name} ({deleting?.arch}) can no longer be picked for fleets or devices. A type that
            devices still use cannot be deleted: change their type first.
          </Text>
          {remove.isError && <ErrorNotice error={remove.error} />}
        </Stack>
      </Confirm>
    </Card>
  );
}

function AddDeviceType({ orgId }: { orgId: number }) {
  const queryClient = useQueryClient();
  const [slug, setSlug] = useState('');
  const [name, setName] = useState('');
  const [arch, setArch] = useState('');
  const add = useMutation({
    mutationFn: async () =>
      data(
        await api.POST('/api/v1/device-types', {
          body: { orgId, slug: slug.trim(), name: name.trim(), arch: arch.trim() },
        }),
      ),
    onSuccess: async (type) => {
      setSlug('');
      setName('');
      setArch('');
      notifications.show({ color: 'green', message: `Added the device type ${type.slug}` });
      await queryClient.invalidateQueries({ queryKey: ['device-types', orgId] });
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    add.mutate();
  };
  return (
    <form onSubmit={submit}>
      <Group align="flex-end" mt="sm">
        <TextInput
          label="Slug"
          placeholder="acme-gateway-v2"
          required
          value={slug}
          onChange={(e) => setSlug(e.currentTarget.value)}
        />
        <TextInput
          label="Name"
          placeholder="Acme Gateway v2"
          required
          value={name}
          onChange={(e) => setName(e.currentTarget.value)}
        />
        <TextInput
          label="Architecture"
          placeholder="aarch64, armv7hf, amd64"
          required
          w={200}
          value={arch}
          onChange={(e) => setArch(e.currentTarget.value)}
        />
        <Button type="submit" loading={add.isPending}>
          Add device type
        </Button>
      </Group>
      {add.isError && (
        <Stack mt="xs">
          <ErrorNotice error={add.error} />
        </Stack>
      )}
    </form>
  );
}
