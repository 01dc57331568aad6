import { CsvError, type PreauthCsvRow, preauthRows } from '@fleetgate/protocol/preauth-csv';
import { Button, Code, FileInput, Modal, Select, Stack, Text } from '@mantine/core';
import { useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { ApiError, api, data } from '../api/client.ts';
import { useFleets } from '../fleets/queries.ts';
import { useOrg } from '../session/session.ts';
import { type BulkOutcome, BulkResults } from '../ui/BulkResults.tsx';
import { ErrorNotice } from '../ui/QueryState.tsx';

/** Rows per request: small enough that the progress bar moves on a file of a few hundred rows. */
const BATCH = 20;

/**
 * Preauthorizes the devices of a CSV file (`identity,public_key[,name]`, what `fleetgate keygen` writes and
 * `fleetgate preauth --csv` takes, read by the same parser) through `POST /api/v1/auth-sets/preauthorize`, in
 * batches, with a result per row: done, or the server's reason.
 */
export function PreauthorizeCsv({ opened, onClose }: { opened: boolean; onClose(): void }) {
  const { orgId } = useOrg();
  const fleets = useFleets(orgId);
  const queryClient = useQueryClient();
  const [fleetId, setFleetId] = useState<string | null>(null);
  const [file, setFile] = useState<File | null>(null);
  const [problem, setProblem] = useState<unknown>();
  const [total, setTotal] = useState(0);
  const [outcomes, setOutcomes] = useState<BulkOutcome[]>();
  const [running, setRunning] = useState(false);

  const upload = async (event: FormEvent) => {
    event.preventDefault();
    if (!file || !fleetId) return;
    setProblem(undefined);
    let rows: PreauthCsvRow[];
    try {
      rows = preauthRows(await file.text());
      if (rows.length === 0) throw new CsvError('the CSV has no rows under its header');
    } catch (error) {
      setProblem(error);
      return;
    }
    setRunning(true);
    setTotal(rows.length);
    onClose();
    const done: BulkOutcome[] = [];
    setOutcomes([]);
    try {
      for (let start = 0; start < rows.length; start += BATCH) {
        const batch = rows.slice(start, start + BATCH);
        const sendable = batch.filter((row) => row.problem === undefined);
        const answers = new Map<PreauthCsvRow, BulkOutcome>();
        for (const row of batch)
          if (row.problem !== undefined)
            answers.set(row, { key: String(row.line), label: labelOf(row), ok: false, message: row.problem });
        await send(Number(fleetId), sendable, answers);
        for (const row of batch) done.push(answers.get(row)!);
        setOutcomes([...done]);
      }
    } finally {
      setRunning(false);
      await queryClient.invalidateQueries({ queryKey: ['auth-sets'] });
      await queryClient.invalidateQueries({ queryKey: ['devices'] });
    }
  };

  return (
    <>
      <Modal opened={opened} onClose={onClose} title="Preauthorize devices from a CSV file" size="lg">
        <form onSubmit={(event) => void upload(event)}>
          <Stack>
            <Select
              label="Fleet"
              required
              data={(fleets.data?.items ?? []).map((f) => ({ value: String(f.id), label: f.name }))}
              value={fleetId}
              onChange={setFleetId}
            />
            <FileInput
              label="CSV file"
              required
              accept=".csv,text/csv"
              placeholder="devices.csv"
              value={file}
              onChange={setFile}
            />
            <Text size="xs" c="dimmed">
              One device per row under the header <Code>identity,public_key,name</Code> (name optional), the
              identity a JSON object such as <Code>{'{"serial":"P0001"}'}</Code>: the file{' '}
              <Code>npx fleetgate keygen --count 100 --prefix P --out keys/</Code> writes.
            </Text>
            {problem !== undefined && <ErrorNotice error={problem} title="The file cannot be read" />}
            <Button type="submit" loading={running} disabled={!fleetId || !file}>
              Upload and preauthorize
            </Button>
          </Stack>
        </form>
      </Modal>
      <BulkResults
        title={`Preauthorize ${total} devices${file ? ` from ${file.name}` : ''}`}
        total={total}
        outcomes={outcomes}
        onClose={() => setOutcomes(undefined)}
      />
    </>
  );
}

/**
 * Sends rows in one request and sets each row's answer. A batch the server refuses whole (400: a row its schema
 * refuses, such as an empty public key) is sent again row by row, so only the bad rows fail, each with its reason.
 */
async function send(fleetId: number, rows: PreauthCsvRow[], answers: Map<PreauthCsvRow, BulkOutcome>) {
  if (!rows.length) return;
  try {
    const result = data(
      await api.POST('/api/v1/auth-sets/preauthorize', {
        body: {
          fleetId,
          devices: rows.map(({ identity, publicKey, name }) => ({
            identity: identity as Record<string, string>,
            publicKey,
            ...(name ? { name } : {}),
          })),
        },
      }),
    );
    for (const item of result.items) {
      const row = rows[item.index]!;
      answers.set(row, {
        key: String(row.line),
        label: labelOf(row),
        ok: item.outcome === 'created',
        message:
          item.outcome === 'created'
            ? `preauthorized as ${item.device?.name ?? 'a new device'}`
            : (item.reason ??
              (item.outcome === 'conflict' ? 'a device with this identity is already known' : item.outcome)),
      });
    }
  } catch (error) {
    if (error instanceof ApiError && error.status === 400 && rows.length > 1) {
      for (const row of rows) await send(fleetId, [row], answers);
      return;
    }
    const message = error instanceof Error ? error.message : String(error);
    for (const row of rows)
      answers.set(row, { key: String(row.line), label: labelOf(row), ok: false, message });
  }
}

/** A row as the person finds it in their file: its line and identity. */
function labelOf(row: PreauthCsvRow): string {
  const identity =
    row.identity && typeof row.identity === 'object'
      ? Object.entries(row.identity as Record<string, unknown>)
          .map(([k, v]) => `${k}=${String(v)}`)
          .join(' ')
      : '';
  return `line ${row.line}${identity ? `: ${identity}` : ''}`;
}
