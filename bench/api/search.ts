/**
 * One person searching the devices table: how long a page of the list takes to answer, one request at a time,
 * for the texts a person types to find devices among 100,000 (fleet.ts's fleet): a device's number, a part of a
 * uuid, a text no device holds, and a common one, each sorted by name and by last seen, with the UI table's
 * `fields`. The baseline, measured in the same run, is the same page without a text: each search prints its
 * median against it.
 *
 *   npx tsx bench/api/search.ts [--db sqlite|postgres|both] [--devices 100000] [--requests 15]
 *
 * Wall time as the client sees it, on loopback: the server and the database share the machine's two cores with
 * nothing else of the bench. The first request of each search is left out (it counts the matching devices, which
 * later pages take from the kept totals).
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { api, wholeNumber } from '../lib/server-process.ts';
import { type DbName, startSeededServer, UI_TABLE_FIELDS } from './fleet.ts';

const log = (line: string) => process.stdout.write(`${line}\n`);

/** What is typed, and what it finds in fleet.ts's fleet. */
const searches: { label: string; q: string | undefined }[] = [
  { label: 'no text (baseline)', q: undefined },
  { label: 'a common text (12,600 devices)', q: 'kios' },
  { label: "a device's number (10 devices)", q: '-01234' },
  { label: 'one device by its number', q: '-099999' },
  { label: 'a part of a uuid', q: '3f2a' },
  { label: 'a text no device holds', q: 'zzzz' },
];

interface Timing {
  label: string;
  sort: string;
  total: number;
  medianMs: number;
  maxMs: number;
}

async function searchTimes(
  db: DbName,
  devices: number,
  requests: number,
  signal: AbortSignal,
): Promise<Timing[]> {
  const seeded = await startSeededServer(db, devices, { signal, log });
  try {
    const timings: Timing[] = [];
    for (const sort of ['name', '-lastSeenAt']) {
      for (const { label, q } of searches) {
        const path =
          `/api/v1/devices?orgId=${seeded.orgId}&limit=50&sort=${sort}&fields=${UI_TABLE_FIELDS}` +
          (q === undefined ? '' : `&q=${encodeURIComponent(q)}`);
        let total = 0;
        const times: number[] = [];
        for (let i = 0; i <= requests; i++) {
          signal.throwIfAborted();
          const start = performance.now();
          const page = await api(seeded.server.url, 'GET', path, seeded.session);
          if (i > 0) times.push(performance.now() - start);
          total = page.total;
        }
        times.sort((a, b) => a - b);
        timings.push({
          label,
          sort,
          total,
          medianMs: times[Math.floor(times.length / 2)]!,
          maxMs: times[times.length - 1]!,
        });
      }
    }
    return timings;
  } finally {
    await seeded.close();
  }
}

function print(db: DbName, timings: Timing[], requests: number): void {
  log(`\n${db === 'sqlite' ? 'SQLite' : 'PostgreSQL'}: ${requests} requests each, one at a time (wall time)`);
  const rows = [['search', 'sort', 'devices', 'median', 'max', 'vs no text']];
  for (const t of timings) {
    const baseline = timings.find((b) => b.sort === t.sort && b.label === searches[0]!.label)!;
    rows.push([
      t.label,
      t.sort,
      t.total.toLocaleString('en'),
      `${t.medianMs.toFixed(1)} ms`,
      `${t.maxMs.toFixed(1)} ms`,
      `${(t.medianMs / baseline.medianMs).toFixed(1)}×`,
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  log(`  ${line(rows[0]!)}\n  ${widths.map((w) => '─'.repeat(w)).join('  ')}`);
  for (const r of rows.slice(1)) log(`  ${line(r)}`);
}

async function main(): Promise<number> {
  const abort = new AbortController();
  const interrupt = () => abort.abort(new Error('interrupted'));
  process.on('SIGINT', interrupt);
  process.on('SIGTERM', interrupt);
  const { values } = parseArgs({
    options: {
      db: { type: 'string', default: 'sqlite' },
      devices: { type: 'string', default: '100000' },
      requests: { type: 'string', default: '15' },
    },
  });
  const dbs: DbName[] =
    values.db === 'both' ? ['sqlite', 'postgres'] : values.db === 'postgres' ? ['postgres'] : ['sqlite'];
  const devices = wholeNumber('devices', values.devices, 1);
  const requests = wholeNumber('requests', values.requests, 1);
  log(
    `fleetgate search: ${devices.toLocaleString('en')} devices; Node ${process.versions.node}, ${os.cpus().length} cores, ` +
      `load average ${os.loadavg()[0]!.toFixed(2)}, ${new Date().toISOString()}`,
  );
  try {
    for (const db of dbs) print(db, await searchTimes(db, devices, requests, abort.signal), requests);
    log(`load average at the end: ${os.loadavg()[0]!.toFixed(2)}`);
    return 0;
  } catch (err) {
    log(`\nBENCH FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return 1;
  }
}

process.exitCode = await main();
