import {
  ActionIcon,
  AppShell,
  Burger,
  Center,
  Group,
  Loader,
  Menu,
  Select,
  Text,
  Title,
  Tooltip,
  UnstyledButton,
  useComputedColorScheme,
  useMantineColorScheme,
} from '@mantine/core';
import { useDisclosure } from '@mantine/hooks';
import { useQueryClient } from '@tanstack/react-query';
import { Link, Outlet, useNavigate, useRouterState } from '@tanstack/react-router';
import { useEffect, useMemo, useState } from 'react';
import { ApiError, api, onSignedOut } from '../api/client.ts';
import { useLiveUpdates } from '../api/live.ts';
import {
  meQuery,
  OrgContext,
  type OrgContextValue,
  storedOrgId,
  storeOrgId,
  useMe,
  useOrg,
} from '../session/session.ts';
import { NavLinkItem } from '../ui/links.tsx';
import { ErrorNotice } from '../ui/QueryState.tsx';

const pages = [
  { to: '/', label: 'Dashboard' },
  { to: '/devices', label: 'Devices' },
  { to: '/fleets', label: 'Fleets' },
  { to: '/pending', label: 'Pending devices' },
  { to: '/sessions', label: 'Sessions' },
  { to: '/people', label: 'People' },
  { to: '/audit', label: 'Audit log' },
  { to: '/settings', label: 'Settings' },
] as const;

/** The signed-in frame of every page: header, navigation, organization switcher; sign-in when signed out. */
export function AppShellLayout() {
  const me = useMe();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const pathname = useRouterState({ select: (s) => s.location.pathname });
  const [opened, { toggle, close }] = useDisclosure();
  const [orgId, setOrgIdState] = useState<number | undefined>(storedOrgId);

  useEffect(
    () =>
      onSignedOut((reason) => {
        // Only a person who was signed in has a session that ended; a first visit just signs in.
        const wasSignedIn = queryClient.getQueryData(meQuery.queryKey) !== undefined;
        queryClient.clear();
        void navigate({
          to: '/sign-in',
          search: { ...(wasSignedIn ? { reason } : {}), next: window.location.pathname },
        });
      }),
    [navigate, queryClient],
  );
  useEffect(() => {
    if (me.error instanceof ApiError && me.error.status === 401) {
      void navigate({ to: '/sign-in', search: { next: window.location.pathname } });
    }
  }, [me.error, navigate]);
  useLiveUpdates(me.isSuccess);

  const value = useMemo<OrgContextValue | undefined>(() => {
    if (!me.data) return undefined;
    const memberships = me.data.memberships;
    const membership = memberships.find((m) => m.orgId === orgId) ?? memberships[0];
    return {
      me: me.data,
      membership,
      orgId: membership?.orgId,
      setOrgId: (id) => {
        storeOrgId(id);
        setOrgIdState(id);
      },
    };
  }, [me.data, orgId]);

  if (me.error && !(me.error instanceof ApiError && me.error.status === 401)) {
    return (
      <Center h="100vh">
        <ErrorNotice error={me.error} />
      </Center>
    );
  }
  if (!value) {
    return (
      <Center h="100vh">
        <Loader aria-label="Loading" />
      </Center>
    );
  }

  return (
    <OrgContext.Provider value={value}>
      <AppShell
        header={{ height: 56 }}
        navbar={{ width: 220, breakpoint: 'sm', collapsed: { mobile: !opened } }}
        padding="md"
      >
        <AppShell.Header>
          <Group h="100%" px="md" justify="space-between" wrap="nowrap">
            <Group gap="sm" wrap="nowrap">
              <Burger opened={opened} onClick={toggle} hiddenFrom="sm" size="sm" aria-label="Navigation" />
              <Link to="/" aria-label="fleetgate dashboard" style={{ textDecoration: 'none' }}>
                <Title order={3} c="teal" visibleFrom="xs">
                  fleetgate
                </Title>
              </Link>
              <OrgSwitcher />
            </Group>
            <Group gap="xs" wrap="nowrap">
              <ColorSchemeToggle />
              <UserMenu />
            </Group>
          </Group>
        </AppShell.Header>
        <AppShell.Navbar p="xs" aria-label="Pages">
          {pages.map((page) => (
            <NavLinkItem
              key={page.to}
              to={page.to}
              label={page.label}
              active={page.to === '/' ? pathname === '/' : pathname.startsWith(page.to)}
              onClick={close}
            />
          ))}
        </AppShell.Navbar>
        <AppShell.Main>
          <Outlet />
        </AppShell.Main>
      </AppShell>
    </OrgContext.Provider>
  );
}

function OrgSwitcher() {
  const { me, orgId, setOrgId } = useOrg();
  if (me.memberships.length === 0) return <Text c="dimmed">no organization</Text>;
  if (me.memberships.length === 1) {
    return (
      <Text fw={500} visibleFrom="xs">
        {me.memberships[0]!.orgName}
      </Text>
    );
  }
  return (
    <Select
      aria-label="Organization"
      size="sm"
      w={{ base: 130, sm: 200 }}
      allowDeselect={false}
      value={String(orgId)}
      data={me.memberships.map((m) => ({ value: String(m.orgId), label: m.orgName }))}
      onChange={(value) => value && setOrgId(Number(value))}
    />
  );
}

function ColorSchemeToggle() {
  const { setColorScheme } = useMantineColorScheme();
  const computed = useComputedColorScheme('light');
  const next = computed === 'dark' ? 'light' : 'dark';
  return (
    <Tooltip label={`Switch to ${next} mode`}>
      <ActionIcon
        variant="default"
        size="lg"
        aria-label={`Switch to ${next} mode`}
        onClick={() => setColorScheme(next)}
      >
        <span aria-hidden>{computed === 'dark' ? '☀' : '☾'}</span>
      </ActionIcon>
    </Tooltip>
  );
}

function UserMenu() {
  const { me } = useOrg();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const signOut = async () => {
    await api.POST('/api/v1/auth/logout').catch(() => undefined);
    queryClient.clear();
    await navigate({ to: '/sign-in', search: { reason: 'You signed out.' } });
  };
  return (
    <Menu position="bottom-end" withinPortal>
      <Menu.Target>
        <UnstyledButton aria-label="Account menu" px="xs">
          <Text size="sm" fw={500} truncate="end" maw={{ base: 90, sm: 240 }}>
            {me.name || me.email}
          </Text>
        </UnstyledButton>
      </Menu.Target>
      <Menu.Dropdown>
        <Menu.Label>{me.email}</Menu.Label>
        <Menu.Item onClick={() => void navigate({ to: '/account' })}>My account and keys</Menu.Item>
        <Menu.Item color="red" onClick={() => void signOut()}>
          Sign out
        </Menu.Item>
      </Menu.Dropdown>
    </Menu>
  );
}
