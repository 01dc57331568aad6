import {
  Badge,
  Button,
  Card,
  Code,
  Group,
  Modal,
  MultiSelect,
  Pagination,
  PasswordInput,
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
import { type FormEvent, useState } from 'react';
import { type Answer, api, data, type Member } from '../api/client.ts';
import { useFleets } from '../fleets/queries.ts';
import { type Role, useCan, useOrg } from '../session/session.ts';
import { Confirm } from '../ui/Confirm.tsx';
import { ago, when } from '../ui/format.ts';
import { ErrorNotice, QueryState } from '../ui/QueryState.tsx';
import { ApiKeys, ShownOnce } from './AccountPage.tsx';

type User = Answer<'/api/v1/users', 'get'>['items'][number];

const roles: { value: Role; label: string }[] = [
  { value: 'owner', label: 'Owner' },
  { value: 'admin', label: 'Admin' },
  { value: 'operator', label: 'Operator' },
  { value: 'viewer', label: 'Viewer' },
];
const roleColors: Record<Role, string> = { owner: 'grape', admin: 'blue', operator: 'teal', viewer: 'gray' };
const USERS_PAGE_SIZE = 50;

/** Who may do what in the current organization; for server administrators also every account and service key. */
export function PeoplePage() {
  const { me, membership } = useOrg();
  return (
    <Stack>
      <Title order={2}>People and access</Title>
      {membership ? (
        <Members />
      ) : (
        <Text>You are not a member of any organization yet: ask an administrator to add you.</Text>
      )}
      {me.serverAdmin && <Users />}
      {me.serverAdmin && (
        <Card withBorder>
          <Title order={3} size="h4" mb="xs">
            Service keys
          </Title>
          <Text size="sm" c="dimmed" mb="xs">
            Credentials for the OpenSSH bastion: a service key may only look up registered SSH keys and open
            sessions as their owners. It is shown once, when it is made.
          </Text>
          <ApiKeys service="openssh" />
        </Card>
      )}
    </Stack>
  );
}

function Members() {
  const { orgId, me, membership } = useOrg();
  const can = useCan();
  const queryClient = useQueryClient();
  const fleets = useFleets(orgId);
  const members = useQuery({
    queryKey: ['members', orgId],
    enabled: orgId !== undefined,
    queryFn: async () =>
      data(
        await api.GET('/api/v1/orgs/{orgId}/members', {
          params: { path: { orgId: orgId! }, query: { limit: 500 } },
        }),
      ),
  });
  const [adding, setAdding] = useState(false);
  const [editing, setEditing] = useState<Member>();
  const [removing, setRemoving] = useState<Member>();
  const [password, setPassword] = useState<{ email: string; password: string }>();
  const fleetName = new Map((fleets.data?.items ?? []).map((f) => [f.id, f.name]));
  const manage = can('member.manage');
  const remove = useMutation({
    mutationFn: async (member: Member) =>
      api.DELETE('/api/v1/orgs/{orgId}/members/{userId}', {
        params: { path: { orgId: orgId!, userId: member.userId } },
      }),
    onSuccess: async (_answer, member) => {
      setRemoving(undefined);
      notifications.show({ color: 'green', message: `Removed ${member.email} from ${membership?.orgName}` });
      await queryClient.invalidateQueries({ queryKey: ['members', orgId] });
      if (member.userId === me.id) await queryClient.invalidateQueries({ queryKey: ['me'] });
    },
  });

  return (
    <Card withBorder>
      <Group justify="space-between" mb="xs">
        <Title order={3} size="h4">
          Members of {membership?.orgName}
        </Title>
        {manage && <Button onClick={() => setAdding(true)}>Add member</Button>}
      </Group>
      <QueryState
        query={members}
        isEmpty={(page) => page.items.length === 0}
        empty={
          <Text size="sm">
            No members yet: add one here, or with{' '}
            <Code>
              npx fleetgate members add {orgId} {'<email>'} --role viewer
            </Code>
            .
          </Text>
        }
      >
        {(page) => (
          <>
            <Table.ScrollContainer minWidth={700}>
              <Table aria-label="Members" striped>
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>Name</Table.Th>
                    <Table.Th>E-mail</Table.Th>
                    <Table.Th>Role</Table.Th>
                    <Table.Th>Fleets</Table.Th>
                    <Table.Th>Added</Table.Th>
                    {manage && (
                      <Table.Th>
                        <VisuallyHidden>Actions</VisuallyHidden>
                      </Table.Th>
                    )}
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {page.items.map((member) => (
                    <Table.Tr key={member.userId} data-member={member.email}>
                      <Table.Td>
                        {member.name}
                        {member.userId === me.id && (
                          <Text span c="dimmed" size="sm">
                            {' '}
                            (you)
                          </Text>
                        )}
                      </Table.Td>
                      <Table.Td>{member.email}</Table.Td>
                      <Table.Td>
                        <Badge color={roleColors[member.role]} variant="dot">
                          {member.role}
                        </Badge>
                      </Table.Td>
                      <Table.Td>
                        {member.fleetIds === null
                          ? 'all fleets'
                          : member.fleetIds.map((id) => fleetName.get(id) ?? `fleet ${id}`).join(', ') ||
                            'none'}
                      </Table.Td>
                      <Table.Td title={when(member.createdAt)}>{ago(member.createdAt)}</Table.Td>
                      {manage && (
                        <Table.Td>
                          <Group gap={4} wrap="nowrap">
                            <Button
                              size="xs"
                              variant="subtle"
                              aria-label={`Change role of ${member.email}`}
                              onClick={() => setEditing(member)}
                            >
                              Change role
                            </Button>
                            <Button
                              size="xs"
                              variant="subtle"
                              color="red"
                              aria-label={`Remove ${member.email}`}
                              onClick={() => setRemoving(member)}
                            >
                              Remove
                            </Button>
                          </Group>
                        </Table.Td>
                      )}
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            </Table.ScrollContainer>
            {page.total > page.items.length && (
              <Text size="sm" c="dimmed">
                Showing {page.items.length} of {page.total} members.
              </Text>
            )}
          </>
        )}
      </QueryState>
      {adding && (
        <AddMember
          onClose={() => setAdding(false)}
          onCreatedUser={(email, oneTimePassword) => setPassword({ email, password: oneTimePassword })}
        />
      )}
      {editing && <EditMember member={editing} onClose={() => setEditing(undefined)} />}
      <ShownOnce
        title={`Account created for ${password?.email ?? ''}`}
        secret={password?.password}
        onClose={() => setPassword(undefined)}
      >
        <Text size="sm">
          This is their one-time password: hand it over by a safe channel. They sign in with it and change it
          under My account.
        </Text>
      </ShownOnce>
      <Confirm
        opened={removing !== undefined}
        title={`Remove ${removing?.email ?? ''}?`}
        confirmLabel="Remove member"
        busy={remove.isPending}
        onCancel={() => setRemoving(undefined)}
        onConfirm={() => removing && remove.mutate(removing)}
      >
        <Stack gap="xs">
          <Text>
            {removing?.userId === me.id
              ? `You lose access to ${membership?.orgName} at once: its devices, fleets and sessions.`
              : `${removing?.name || removing?.email} loses access to ${membership?.orgName} at once: its devices, fleets and sessions. Their account and keys stay; their live sessions may remain open until they end.`}
          </Text>
          {remove.isError && <ErrorNotice error={remove.error} />}
        </Stack>
      </Confirm>
    </Card>
  );
}

/** Roles the signed-in person may hand out: only owners grant the owner role (the server says the same). */
function useGrantableRoles() {
  const { membership } = useOrg();
  return roles.filter((r) => r.value !== 'owner' || membership?.role === 'owner');
}

function FleetScope({
  role,
  fleetIds,
  onChange,
}: {
  role: Role;
  fleetIds: string[];
  onChange(fleetIds: string[]): void;
}) {
  const { orgId } = useOrg();
  const fleets = useFleets(orgId);
  return (
    <MultiSelect
      label="Narrow to fleets"
      description={
        role === 'owner'
          ? 'Owners always have the whole organization.'
          : 'Leave empty for the whole organization, fleets made later included.'
      }
      placeholder={fleetIds.length ? undefined : 'whole organization'}
      searchable
      clearable
      disabled={role === 'owner'}
      data={(fleets.data?.items ?? []).map((f) => ({ value: String(f.id), label: f.name }))}
      value={role === 'owner' ? [] : fleetIds}
      onChange={onChange}
    />
  );
}

function AddMember({
  onClose,
  onCreatedUser,
}: {
  onClose(): void;
  onCreatedUser(email: string, password: string): void;
}) {
  const { orgId, membership } = useOrg();
  const queryClient = useQueryClient();
  const grantable = useGrantableRoles();
  const [email, setEmail] = useState('');
  const [name, setName] = useState('');
  const [role, setRole] = useState<Role>('viewer');
  const [fleetIds, setFleetIds] = useState<string[]>([]);
  const add = useMutation({
    mutationFn: async () =>
      data(
        await api.POST('/api/v1/orgs/{orgId}/members', {
          params: { path: { orgId: orgId! } },
          body: {
            email: email.trim(),
            role,
            fleetIds: role === 'owner' || fleetIds.length === 0 ? null : fleetIds.map(Number),
            ...(name.trim() ? { name: name.trim() } : {}),
          },
        }),
      ),
    onSuccess: async (member) => {
      onClose();
      // An e-mail without an account makes one, and the server answers its password once.
      if (member.password) onCreatedUser(member.email, member.password);
      else notifications.show({ color: 'green', message: `Added ${member.email} as ${member.role}` });
      await queryClient.invalidateQueries({ queryKey: ['members', orgId] });
      await queryClient.invalidateQueries({ queryKey: ['users'] });
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    add.mutate();
  };
  return (
    <Modal opened onClose={onClose} title={`Add a member to ${membership?.orgName ?? 'the organization'}`}>
      <form onSubmit={submit}>
        <Stack>
          <TextInput
            label="E-mail"
            type="email"
            required
            data-autofocus
            value={email}
            onChange={(e) => setEmail(e.currentTarget.value)}
          />
          <TextInput
            label="Name"
            description="Used only when this e-mail has no account yet: one is made, with a one-time password."
            value={name}
            onChange={(e) => setName(e.currentTarget.value)}
          />
          <Select
            label="Role"
            allowDeselect={false}
            data={grantable}
            value={role}
            onChange={(value) => value && setRole(value as Role)}
          />
          <FleetScope role={role} fleetIds={fleetIds} onChange={setFleetIds} />
          {add.isError && <ErrorNotice error={add.error} />}
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={add.isPending} disabled={!email.trim()}>
              Add member
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

function EditMember({ member, onClose }: { member: Member; onClose(): void }) {
  const { orgId, membership } = useOrg();
  const queryClient = useQueryClient();
  const grantable = useGrantableRoles();
  const [role, setRole] = useState<Role>(member.role);
  const [fleetIds, setFleetIds] = useState<string[]>((member.fleetIds ?? []).map(String));
  // An owner's role is changed only by owners: others see it but cannot pick it.
  const choices = grantable.some((r) => r.value === member.role)
    ? grantable
    : [...grantable, { ...roles.find((r) => r.value === member.role)!, disabled: true }];
  const save = useMutation({
    mutationFn: async () =>
      data(
        await api.PATCH('/api/v1/orgs/{orgId}/members/{userId}', {
          params: { path: { orgId: orgId!, userId: member.userId } },
          body: {
            ...(role !== member.role ? { role } : {}),
            fleetIds: role === 'owner' || fleetIds.length === 0 ? null : fleetIds.map(Number),
          },
        }),
      ),
    onSuccess: async (updated) => {
      onClose();
      notifications.show({
        color: 'green',
        message: `${updated.email} is now ${updated.role}${updated.fleetIds ? ` in ${updated.fleetIds.length} fleets` : ''}`,
      });
      await queryClient.invalidateQueries({ queryKey: ['members', orgId] });
      await queryClient.invalidateQueries({ queryKey: ['me'] });
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    save.mutate();
  };
  return (
    <Modal opened onClose={onClose} title={`${member.email} in ${membership?.orgName ?? 'the organization'}`}>
      <form onSubmit={submit}>
        <Stack>
          <Select
            label="Role"
            allowDeselect={false}
            data={choices}
            value={role}
            onChange={(value) => value && setRole(value as Role)}
          />
          <FleetScope role={role} fleetIds={fleetIds} onChange={setFleetIds} />
          {save.isError && <ErrorNotice error={save.error} />}
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={save.isPending}>
              Save
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}

/** Every account on the server (server administrators). */
function Users() {
  const { me } = useOrg();
  const queryClient = useQueryClient();
  const [text, setText] = useState('');
  const [q] = useDebouncedValue(text.trim(), 250);
  const [page, setPage] = useState(1);
  const [creating, setCreating] = useState(false);
  const [created, setCreated] = useState<{ email: string; password: string }>();
  const [deleting, setDeleting] = useState<User>();
  const query = { limit: USERS_PAGE_SIZE, page, ...(q ? { q } : {}) };
  const users = useQuery({
    queryKey: ['users', query],
    placeholderData: keepPreviousData,
    queryFn: async () => data(await api.GET('/api/v1/users', { params: { query } })),
  });
  const remove = useMutation({
    mutationFn: async (user: User) =>
      api.DELETE('/api/v1/users/{userId}', { params: { path: { userId: user.id } } }),
    onSuccess: async (_answer, user) => {
      setDeleting(undefined);
      notifications.show({ color: 'green', message: `Deleted the account of ${user.email}` });
      await queryClient.invalidateQueries({ queryKey: ['users'] });
      await queryClient.invalidateQueries({ queryKey: ['members'] });
    },
  });
  return (
    <Card withBorder>
      <Group justify="space-between" mb="xs">
        <Title order={3} size="h4">
          Users
        </Title>
        <Button variant="light" onClick={() => setCreating(true)}>
          Create user
        </Button>
      </Group>
      <Text size="sm" c="dimmed" mb="xs">
        Every account on this server, in any organization or none (you see this as a server administrator).
      </Text>
      <TextInput
        label="Search users"
        placeholder="e-mail or name"
        w={260}
        mb="sm"
        value={text}
        onChange={(e) => {
          setText(e.currentTarget.value);
          setPage(1);
        }}
      />
      <QueryState
        query={users}
        isEmpty={(result) => result.total === 0}
        empty={q ? 'No user matches this search.' : 'No users yet.'}
      >
        {(result) => (
          <>
            <Table.ScrollContainer minWidth={600}>
              <Table aria-label="Users" striped>
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>Name</Table.Th>
                    <Table.Th>E-mail</Table.Th>
                    <Table.Th>Server administrator</Table.Th>
                    <Table.Th>Created</Table.Th>
                    <Table.Th>
                      <VisuallyHidden>Actions</VisuallyHidden>
                    </Table.Th>
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {result.items.map((user) => (
                    <Table.Tr key={user.id}>
                      <Table.Td>{user.name}</Table.Td>
                      <Table.Td>{user.email}</Table.Td>
                      <Table.Td>{user.serverAdmin ? <Badge variant="dot">yes</Badge> : 'no'}</Table.Td>
                      <Table.Td>{when(user.createdAt)}</Table.Td>
                      <Table.Td>
                        {user.id !== me.id && (
                          <Button
                            size="xs"
                            variant="subtle"
                            color="red"
                            aria-label={`Delete the account of ${user.email}`}
                            onClick={() => setDeleting(user)}
                          >
                            Delete
                          </Button>
                        )}
                      </Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            </Table.ScrollContainer>
            {result.total > USERS_PAGE_SIZE && (
              <Pagination
                mt="sm"
                total={Math.ceil(result.total / USERS_PAGE_SIZE)}
                value={page}
                onChange={setPage}
                aria-label="User pages"
                getControlProps={(control) => ({ 'aria-label': `${control} page` })}
              />
            )}
          </>
        )}
      </QueryState>
      {creating && (
        <CreateUser
          onClose={() => setCreating(false)}
          onCreated={(email, password) => setCreated({ email, password })}
        />
      )}
      <ShownOnce
        title={`Account created for ${created?.email ?? ''}`}
        secret={created?.password}
        onClose={() => setCreated(undefined)}
      >
        <Text size="sm">
          This is their one-time password: hand it over by a safe channel. Add them to an organization under
          Members to give them access.
        </Text>
      </ShownOnce>
      <Confirm
        opened={deleting !== undefined}
        title={`Delete the account of ${deleting?.email ?? ''}?`}
        confirmLabel="Delete account"
        busy={remove.isPending}
        onCancel={() => setDeleting(undefined)}
        onConfirm={() => deleting && remove.mutate(deleting)}
      >
        <Stack gap="xs">
          <Text>
            {deleting?.name || deleting?.email} can no longer sign in. Their memberships in every
            organization, their API keys and SSH keys are deleted with the account. This cannot be undone.
          </Text>
          {remove.isError && <ErrorNotice error={remove.error} />}
        </Stack>
      </Confirm>
    </Card>
  );
}

function CreateUser({
  onClose,
  onCreated,
}: {
  onClose(): void;
  onCreated(email: string, password: string): void;
}) {
  const queryClient = useQueryClient();
  const [email, setEmail] = useState('');
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const create = useMutation({
    mutationFn: async () =>
      data(
        await api.POST('/api/v1/users', {
          body: {
            email: email.trim(),
            ...(name.trim() ? { name: name.trim() } : {}),
            ...(password ? { password } : {}),
          },
        }),
      ),
    onSuccess: async (user) => {
      onClose();
      if (user.password) onCreated(user.email, user.password);
      else notifications.show({ color: 'green', message: `Created the account of ${user.email}` });
      await queryClient.invalidateQueries({ queryKey: ['users'] });
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    create.mutate();
  };
  return (
    <Modal opened onClose={onClose} title="Create a user">
      <form onSubmit={submit}>
        <Stack>
          <TextInput
            label="E-mail"
            type="email"
            required
            data-autofocus
            value={email}
            onChange={(e) => setEmail(e.currentTarget.value)}
          />
          <TextInput label="Name" value={name} onChange={(e) => setName(e.currentTarget.value)} />
          <PasswordInput
            label="Password"
            description="8 characters or more; leave empty to have one generated and shown once."
            autoComplete="new-password"
            minLength={8}
            value={password}
            onChange={(e) => setPassword(e.currentTarget.value)}
          />
          {create.isError && <ErrorNotice error={create.error} />}
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={create.isPending} disabled={!email.trim()}>
              Create user
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}
