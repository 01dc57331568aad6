import { Alert, Button, Center, Paper, PasswordInput, Stack, Text, TextInput, Title } from '@mantine/core';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useNavigate, useSearch } from '@tanstack/react-router';
import { type FormEvent, useState } from 'react';
import { ApiError, api, data } from '../api/client.ts';

/** Sign-in with e-mail and password; the session lands in an httpOnly cookie, never in a script's reach. */
export function SignInPage() {
  const search = useSearch({ from: '/sign-in' });
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const signIn = useMutation({
    mutationFn: async () =>
      data(await api.POST('/api/v1/auth/login', { body: { email, password, cookie: true } })),
    onSuccess: async () => {
      queryClient.clear();
      await navigate({ to: search.next ?? '/' });
    },
  });
  const submit = (event: FormEvent) => {
    event.preventDefault();
    signIn.mutate();
  };
  return (
    <Center mih="100vh" p="md">
      <Paper withBorder shadow="sm" p="xl" w={380} component="main">
        <form onSubmit={submit}>
          <Stack>
            <div>
              <Title order={1} size="h2" c="teal">
                fleetgate
              </Title>
              <Text c="dimmed" size="sm">
                Sign in to manage your fleets
              </Text>
            </div>
            {search.reason && !signIn.isError && (
              <Alert color="blue" role="status">
                {search.reason}
              </Alert>
            )}
            {signIn.isError && <SignInError error={signIn.error} />}
            <TextInput
              label="E-mail"
              type="email"
              autoComplete="username"
              required
              value={email}
              onChange={(e) => setEmail(e.currentTarget.value)}
            />
            <PasswordInput
              label="Password"
              autoComplete="current-password"
              required
              value={password}
              onChange={(e) => setPassword(e.currentTarget.value)}
            />
            <Button type="submit" loading={signIn.isPending}>
              Sign in
            </Button>
            <Text size="xs" c="dimmed">
              The first owner's password is printed once by the first <code>npm start</code>.
            </Text>
          </Stack>
        </form>
      </Paper>
    </Center>
  );
}

function SignInError({ error }: { error: Error }) {
  if (error instanceof ApiError && error.status === 429) {
    const wait = (error.details as { retryAfterSeconds?: number } | undefined)?.retryAfterSeconds;
    return (
      <Alert color="orange" title="Too many failed sign-ins" role="alert">
        {wait ? `Try again in ${wait} s.` : error.message}
      </Alert>
    );
  }
  return (
    <Alert color="red" title="Not signed in" role="alert">
      {error.message}
    </Alert>
  );
}
