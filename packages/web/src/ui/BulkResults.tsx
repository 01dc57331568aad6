import { Badge, Modal, Progress, Stack, Table, Text } from '@mantine/core';

export interface BulkOutcome {
  key: string;
  label: string;
  ok: boolean;
  message: string;
}

/** The per-item result of a bulk action, with progress while it runs. */
export function BulkResults({
  title,
  total,
  outcomes,
  onClose,
}: {
  title: string;
  total: number;
  outcomes: BulkOutcome[] | undefined;
  onClose(): void;
}) {
  const done = outcomes?.length ?? 0;
  const failed = outcomes?.filter((o) => !o.ok).length ?? 0;
  return (
    <Modal opened={outcomes !== undefined} onClose={onClose} title={title} size="lg">
      <Stack>
        <Progress value={total ? (done / total) * 100 : 100} aria-label="Progress" />
        <Text size="sm">
          {done} of {total} handled: {done - failed} done{failed ? `, ${failed} failed` : ''}
        </Text>
        <Table>
          <Table.Tbody>
            {outcomes?.map((outcome) => (
              <Table.Tr key={outcome.key}>
                <Table.Td>{outcome.label}</Table.Td>
                <Table.Td>
                  <Badge color={outcome.ok ? 'green' : 'red'} variant="dot" miw="max-content">
                    {outcome.ok ? 'done' : 'failed'}
                  </Badge>
                </Table.Td>
                <Table.Td>{outcome.message}</Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Stack>
    </Modal>
  );
}

/** Runs `action` on every item in turn, reporting each outcome as it comes (a failure does not stop the rest). */
export async function runBulk<T>(
  items: T[],
  nameOf: (item: T) => { key: string; label: string },
  action: (item: T) => Promise<string>,
  report: (outcomes: BulkOutcome[]) => void,
): Promise<BulkOutcome[]> {
  const outcomes: BulkOutcome[] = [];
  report([]);
  for (const item of items) {
    try {
      outcomes.push({ ...nameOf(item), ok: true, message: await action(item) });
    } catch (error) {
      outcomes.push({
        ...nameOf(item),
        ok: false,
        message: error instanceof Error ? error.message : String(error),
      });
    }
    report([...outcomes]);
  }
  return outcomes;
}
