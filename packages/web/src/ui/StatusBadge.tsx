import { Badge, ColorSwatch, Group, Stack, Text } from '@mantine/core';
import type { DeviceStatus } from '../api/client.ts';

const colors: Record<DeviceStatus, string> = {
  online: 'green',
  offline: 'gray',
  pending: 'yellow',
  'never-connected': 'blue',
  decommissioned: 'red',
};

export const statuses = Object.keys(colors) as DeviceStatus[];

export function StatusBadge({ status }: { status: DeviceStatus }) {
  return (
    <Badge color={colors[status]} variant="dot" data-status={status} miw="max-content">
      {status}
    </Badge>
  );
}

/** The status as a coloured dot (for a count beside it) and its word below: for narrow cards, where a badge's one line would not fit. */
export function StatusCount({ status, count }: { status: DeviceStatus; count: number }) {
  return (
    <Stack gap={2} data-status={status}>
      <Group gap={8} wrap="nowrap">
        <ColorSwatch color={`var(--mantine-color-${colors[status]}-6)`} size={10} withShadow={false} />
        <Text size="xl" fw={700}>
          {count}
        </Text>
      </Group>
      <Text size="sm">{status}</Text>
    </Stack>
  );
}
