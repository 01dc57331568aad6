import { Badge } from '@mantine/core';
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
    <Badge color={colors[status]} variant="dot" data-status={status}>
      {status}
    </Badge>
  );
}
