import { Stack, Text, Title } from '@mantine/core';
import { ButtonLink } from '../ui/links.tsx';

export function NotFoundPage() {
  return (
    <Stack align="center" mt="xl">
      <Title order={2}>No such page</Title>
      <Text c="dimmed">The address does not name a page of fleetgate.</Text>
      <ButtonLink to="/">Go to the dashboard</ButtonLink>
    </Stack>
  );
}
