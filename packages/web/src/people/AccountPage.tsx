import {
  Badge,
  Button,
  Card,
  Code,
  CopyButton,
  Group,
  Modal,
  NumberInput,
  PasswordInput,
  Stack,
  Table,
  Text,
  Textarea,
  TextInput,
  Title,
  VisuallyHidden,
} from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, type ReactNode, useState } from 'react';
import { type Answer, api, data } from '../api/client.ts';
import { meQuery, useOrg } from '../session/session.ts';
import { Confirm } from '../ui/Confirm.tsx';
import { ago, when } from '../ui/format.ts';
import { ErrorNotice, QueryState } from '../ui/QueryState.tsx';

type ApiKey = Answer<'/api/v1/api-keys', 'get'>['items'][number];
type SshKey = Answer<'/api/v1/ssh-keys', 'get'>['items'][number];

/** The signed-in person's own account: name, password, API keys for scripts, SSH keys for the gateway. */
export function AccountPage() {
  return (
    <Stack>
      <Title order={2}>My account</Title>
      <Profile />
      <ChangePassword />
      <Card withBorder>
        <Title order={3} size="h4" mb="xs">
          API keys
        </Title>
        <Text size="sm" c="dimmed" mb="xs">
          For scripts and CI: a key acts as you, with your roles. It is shown once, when it is made; use it as{' '}
          <Code>FLEETGATE_TOKEN</Code> or <Code>--token</Code>.
        </Text>
        <ApiKeys service={null} />
      </Card>
      <SshKeys />
    </Stack>
  );
}

function Profile() {
  const { me } = useOrg();
  const queryClient = useQueryClient();
  const [name, setName] = useState(me.name);
  const save = useMutation({
    mutationFn: async () => data(await api.PATCH('/api/v1/me', { body: { name: name.trim() } })),
    onSuccess: async (updated) => {
      queryClient.setQueryData(meQuery.queryKey, updated);
      notifications.show({ color: 'green', message: `Your name is now ${updated.name}` });
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    save.mutate();
  };
  return (
    <Card withBorder>
      <Title order={3} size="h4" mb="xs">
        Profile
      </Title>
      <form onSubmit={submit}>
        <Stack gap="sm" maw={420}>
          <Text size="sm">
            Signed in as <strong>{me.email}</strong>
            {me.serverAdmin && (
              <Badge ml="xs" variant="dot">
                server administrator
              </Badge>
            )}
          </Text>
          <TextInput label="Name" required value={name} onChange={(e) => setName(e.currentTarget.value)} />
          {save.isError && <ErrorNotice error={save.error} />}
          <Group>
            <Button type="submit" loading={save.isPending} disabled={!name.trim() || name.trim() === me.name}>
              Save name
            </Button>
          </Group>
        </Stack>
      </form>
    </Card>
  );
}

function ChangePassword() {
  const [currentPassword, setCurrentPassword] = useState('');
  const [password, setPassword] = useState('');
  const [repeat, setRepeat] = useState('');
  const mismatch = repeat !== '' && repeat !== password;
  const change = useMutation({
    mutationFn: async () => data(await api.PATCH('/api/v1/me', { body: { password, currentPassword } })),
    onSuccess: () => {
      setCurrentPassword('');
      setPassword('');
      setRepeat('');
      notifications.show({
        color: 'green',
        message: 'Password changed: your other sign-ins (other browsers, the CLI) have ended.',
      });
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (!mismatch) change.mutate();
  };
  return (
    <Card withBorder>
      <Title order={3} size="h4" mb="xs">
        Password
      </Title>
      <form onSubmit={submit}>
        <Stack gap="sm" maw={420}>
          <PasswordInput
            label="Current password"
            required
            autoComplete="current-password"
            value={currentPassword}
            onChange={(e) => setCurrentPassword(e.currentTarget.value)}
          />
          <PasswordInput
            label="New password"
            description="8 characters or more. Changing it signs you out everywhere else."
            required
            minLength={8}
            autoComplete="new-password"
            value={password}
            onChange={(e) => setPassword(e.currentTarget.value)}
          />
          <PasswordInput
            label="New password again"
            required
            autoComplete="new-password"
            value={repeat}
            error={mismatch ? 'The two new passwords differ' : undefined}
            onChange={(e) => setRepeat(e.currentTarget.value)}
          />
          {change.isError && <ErrorNotice error={change.error} />}
          <Group>
            <Button type="submit" loading={change.isPending} disabled={mismatch}>
              Change password
            </Button>
          </Group>
        </Stack>
      </form>
    </Card>
  );
}

/**
 * The signed-in person's API keys of one kind: their own (`service: null`), or service credentials such as the
 * OpenSSH bastion's (`'openssh'`, server administrators). Each key is shown once, when it is made.
 */
export function ApiKeys({ service }: { service: ApiKey['service'] }) {
  const queryClient = useQueryClient();
  const keys = useQuery({
    queryKey: ['api-keys'],
    queryFn: async () => data(await api.GET('/api/v1/api-keys')).items,
  });
  const [name, setName] = useState('');
  const [expiresInDays, setExpiresInDays] = useState<number | string>('');
  const [created, setCreated] = useState<{ name: string; key: string }>();
  const [revoking, setRevoking] = useState<ApiKey>();
  const create = useMutation({
    mutationFn: async () =>
      data(
        await api.POST('/api/v1/api-keys', {
          body: {
            name: name.trim(),
            ...(typeof expiresInDays === 'number' ? { expiresInDays } : {}),
            ...(service ? { service } : {}),
          },
        }),
      ),
    onSuccess: async (key) => {
      setCreated({ name: key.name, key: key.key });
      setName('');
      setExpiresInDays('');
      await queryClient.invalidateQueries({ queryKey: ['api-keys'] });
    },
  });
  const revoke = useMutation({
    mutationFn: async (key: ApiKey) =>
      api.DELETE('/api/v1/api-keys/{keyId}', { params: { path: { keyId: key.id } } }),
    onSuccess: async (_answer, key) => {
      setRevoking(undefined);
      notifications.show({ color: 'green', message: `Revoked ${key.name}` });
      await queryClient.invalidateQueries({ queryKey: ['api-keys'] });
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    create.mutate();
  };
  const noun = service ? 'service key' : 'API key';
  const now = Date.now();
  return (
    <Stack gap="sm">
      <QueryState
        query={keys}
        isEmpty={(items) => !items.some((k) => k.service === service)}
        empty={
          service ? (
            <Text size="sm">
              No {service} service key yet: create one below, or with{' '}
              <Code>
                npx fleetgate api-keys create {'<name>'} --service {service}
              </Code>
              .
            </Text>
          ) : (
            <Text size="sm">
              No API keys yet: create one below, or with <Code>npx fleetgate api-keys create {'<name>'}</Code>
              .
            </Text>
          )
        }
      >
        {(items) => (
          <Table.ScrollContainer minWidth={600}>
            <Table aria-label={service ? `${service} service keys` : 'API keys'}>
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Name</Table.Th>
                  <Table.Th>Key starts</Table.Th>
                  <Table.Th>Created</Table.Th>
                  <Table.Th>Expires</Table.Th>
                  <Table.Th>Last used</Table.Th>
                  <Table.Th>State</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {items
                  .filter((key) => key.service === service)
                  .map((key) => (
                    <Table.Tr key={key.id}>
                      <Table.Td>{key.name}</Table.Td>
                      <Table.Td>
                        <Code>{key.prefix}…</Code>
                      </Table.Td>
                      <Table.Td>{when(key.createdAt)}</Table.Td>
                      <Table.Td>{key.expiresAt ? when(key.expiresAt) : 'never'}</Table.Td>
                      <Table.Td title={when(key.lastUsedAt)}>{ago(key.lastUsedAt)}</Table.Td>
                      <Table.Td>
                        {key.revokedAt ? (
                          <Badge color="gray" variant="dot">
                            revoked {ago(key.revokedAt)}
                          </Badge>
                        ) : key.expiresAt && new Date(key.expiresAt).getTime() <= now ? (
                          <Badge color="gray" variant="dot">
                            expired
                          </Badge>
                        ) : (
                          <Button
                            size="xs"
                            color="red"
                            variant="subtle"
                            aria-label={`Revoke ${key.name}`}
                            onClick={() => setRevoking(key)}
                          >
                            Revoke
                          </Button>
                        )}
                      </Table.Td>
                    </Table.Tr>
                  ))}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
        )}
      </QueryState>
      <form onSubmit={submit}>
        <Group align="flex-end">
          <TextInput
            label={service ? 'Service key name' : 'Key name'}
            placeholder={service ? 'bastion-1' : 'ci-pipeline'}
            required
            value={name}
            onChange={(e) => setName(e.currentTarget.value)}
          />
          <NumberInput
            label="Expires in days"
            placeholder="never"
            min={1}
            max={3650}
            allowDecimal={false}
            value={expiresInDays}
            onChange={setExpiresInDays}
            w={150}
          />
          <Button type="submit" loading={create.isPending}>
            Create {noun}
          </Button>
        </Group>
      </form>
      {create.isError && <ErrorNotice error={create.error} />}
      <ShownOnce
        title={`${service ? 'Service key' : 'API key'} ${created?.name ?? ''}`}
        secret={created?.key}
        onClose={() => setCreated(undefined)}
      >
        {service ? (
          <Text size="sm">
            Put it in a root-only file on the bastion and give that file to <Code>--token-file</Code> (
            <Code>fleetgate ssh-authorized-keys --token-file /etc/fleetgate/ssh-service-token</Code>).
          </Text>
        ) : (
          <Text size="sm">
            Use it as <Code>FLEETGATE_TOKEN</Code> or <Code>--token</Code>; it acts as you, with your roles.
          </Text>
        )}
      </ShownOnce>
      <Confirm
        opened={revoking !== undefined}
        title={`Revoke ${revoking?.name ?? ''}?`}
        confirmLabel="Revoke"
        busy={revoke.isPending}
        onCancel={() => setRevoking(undefined)}
        onConfirm={() => revoking && revoke.mutate(revoking)}
      >
        <Stack gap="xs">
          <Text>
            {service
              ? `The bastion using ${revoking?.name ?? 'it'} can no longer look up SSH keys or open sessions: SSH through it stops until it gets a new key.`
              : `Every script or pipeline using ${revoking?.name ?? 'it'} is refused from now on. This cannot be undone.`}
          </Text>
          {revoke.isError && <ErrorNotice error={revoke.error} />}
        </Stack>
      </Confirm>
    </Stack>
  );
}

/** A secret the server answers once (a key, a generated password): shown with a copy button, never again. */
export function ShownOnce({
  title,
  secret,
  onClose,
  children,
}: {
  title: string;
  secret: string | undefined;
  onClose(): void;
  children?: ReactNode;
}) {
  return (
    <Modal opened={secret !== undefined} onClose={onClose} title={title} size="lg">
      <Stack>
        <Text>Copy it now: it is not shown again.</Text>
        <Group wrap="nowrap">
          <Code block style={{ flex: 1, wordBreak: 'break-all' }} data-testid="shown-once">
            {secret}
          </Code>
          <CopyButton value={secret ?? ''}>
            {({ copied, copy }) => (
              <Button onClick={copy} variant="light" color={copied ? 'teal' : undefined}>
                {copied ? 'Copied' : 'Copy'}
              </Button>
            )}
          </CopyButton>
        </Group>
        {children}
        <Group justify="flex-end">
          <Button variant="default" onClick={onClose}>
            Done
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}

function SshKeys() {
  const queryClient = useQueryClient();
  const keys = useQuery({
    queryKey: ['ssh-keys'],
    queryFn: async () => data(await api.GET('/api/v1/ssh-keys')).items,
  });
  const [publicKey, setPublicKey] = useState('');
  const [name, setName] = useState('');
  const [removing, setRemoving] = useState<SshKey>();
  // Never send a private key anywhere, whatever the person pasted by mistake.
  const isPrivate = publicKey.includes('PRIVATE KEY');
  const add = useMutation({
    mutationFn: async () =>
      data(
        await api.POST('/api/v1/ssh-keys', {
          body: { publicKey: publicKey.trim(), ...(name.trim() ? { name: name.trim() } : {}) },
        }),
      ),
    onSuccess: async (key) => {
      setPublicKey('');
      setName('');
      notifications.show({ color: 'green', message: `Added ${key.name} (${key.fingerprint})` });
      await queryClient.invalidateQueries({ queryKey: ['ssh-keys'] });
    },
  });
  const remove = useMutation({
    mutationFn: async (key: SshKey) =>
      api.DELETE('/api/v1/ssh-keys/{keyId}', { params: { path: { keyId: key.id } } }),
    onSuccess: async (_answer, key) => {
      setRemoving(undefined);
      notifications.show({ color: 'green', message: `Removed ${key.name}` });
      await queryClient.invalidateQueries({ queryKey: ['ssh-keys'] });
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    if (!isPrivate) add.mutate();
  };
  return (
    <Card withBorder>
      <Title order={3} size="h4" mb="xs">
        SSH keys
      </Title>
      <Text size="sm" c="dimmed" mb="xs">
        The SSH gateway lets you in with these keys (<Code>ssh -J</Code>, the OpenSSH bastion).
      </Text>
      <QueryState
        query={keys}
        isEmpty={(items) => items.length === 0}
        empty={
          <Text size="sm">
            No SSH keys yet: paste a public key below, or run{' '}
            <Code>npx fleetgate ssh-keys add ~/.ssh/id_ed25519.pub</Code>.
          </Text>
        }
      >
        {(items) => (
          <Table.ScrollContainer minWidth={600}>
            <Table aria-label="SSH keys">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Name</Table.Th>
                  <Table.Th>Algorithm</Table.Th>
                  <Table.Th>Fingerprint</Table.Th>
                  <Table.Th>Added</Table.Th>
                  <Table.Th>Last used</Table.Th>
                  <Table.Th>
                    <VisuallyHidden>Actions</VisuallyHidden>
                  </Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {items.map((key) => (
                  <Table.Tr key={key.id}>
                    <Table.Td>{key.name}</Table.Td>
                    <Table.Td>{key.algorithm}</Table.Td>
                    <Table.Td>
                      <Code>{key.fingerprint}</Code>
                    </Table.Td>
                    <Table.Td>{when(key.createdAt)}</Table.Td>
                    <Table.Td title={when(key.lastUsedAt)}>{ago(key.lastUsedAt)}</Table.Td>
                    <Table.Td>
                      <Button
                        size="xs"
                        color="red"
                        variant="subtle"
                        aria-label={`Remove ${key.name}`}
                        onClick={() => setRemoving(key)}
                      >
                        Remove
                      </Button>
                    </Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
        )}
      </QueryState>
      <form onSubmit={submit}>
        <Stack gap="sm" mt="sm">
          <Textarea
            label="Public key"
            description="One line of your id_*.pub file, e.g. ~/.ssh/id_ed25519.pub"
            placeholder="ssh-ed25519 AAAA… you@laptop"
            required
            autosize
            minRows={2}
            styles={{ input: { fontFamily: 'var(--mantine-font-family-monospace)' } }}
            value={publicKey}
            error={isPrivate ? 'That is a private key: paste the public one (the .pub file)' : undefined}
            onChange={(e) => setPublicKey(e.currentTarget.value)}
          />
          <Group align="flex-end">
            <TextInput
              label="Name"
              placeholder="the comment in the key"
              value={name}
              onChange={(e) => setName(e.currentTarget.value)}
            />
            <Button type="submit" loading={add.isPending} disabled={isPrivate || !publicKey.trim()}>
              Add SSH key
            </Button>
          </Group>
          {add.isError && <ErrorNotice error={add.error} />}
        </Stack>
      </form>
      <Confirm
        opened={removing !== undefined}
        title={`Remove ${removing?.name ?? ''}?`}
        confirmLabel="Remove key"
        busy={remove.isPending}
        onCancel={() => setRemoving(undefined)}
        onConfirm={() => removing && remove.mutate(removing)}
      >
        <Stack gap="xs">
          <Text>
            The SSH gateway no longer accepts {removing?.fingerprint ?? 'this key'}: you can no longer reach
            devices over SSH with it.
          </Text>
          {remove.isError && <ErrorNotice error={remove.error} />}
        </Stack>
      </Confirm>
    </Card>
  );
}
