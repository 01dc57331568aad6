import { Group, SegmentedControl, SimpleGrid, Skeleton, Stack, Text, Title } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { lazy, Suspense, useMemo, useState } from 'react';
import { type Answer, api, data } from '../api/client.ts';
import { QueryState } from '../ui/QueryState.tsx';

// uPlot is fetched with the first chart, not with the device page.
const TimeChart = lazy(() => import('../ui/TimeChart.tsx').then((m) => ({ default: m.TimeChart })));

type Sample = Answer<'/api/v1/devices/{device}/state-history', 'get'>['items'][number];

const ranges = { '1h': 3600, '24h': 24 * 3600, '7d': 7 * 24 * 3600 } as const;
type Range = keyof typeof ranges;

/** A minute is how often the server keeps a sample: the charts look again as often. */
const REFRESH_MS = 60_000;

const percent = (pair: Sample['memory']) =>
  pair && pair.totalBytes > 0 ? (pair.usedBytes / pair.totalBytes) * 100 : null;

/** The numbers of a device's state reports over time, from `GET /api/v1/devices/{device}/state-history`. */
export function StateHistory({ uuid, reportedAt }: { uuid: string; reportedAt: string | null }) {
  const [range, setRange] = useState<Range>('24h');
  const history = useQuery({
    queryKey: ['device', uuid, 'state-history', range, reportedAt],
    refetchInterval: REFRESH_MS,
    queryFn: async () =>
      data(
        await api.GET('/api/v1/devices/{device}/state-history', {
          params: {
            path: { device: uuid },
            query: { since: new Date(Date.now() - ranges[range] * 1000).toISOString() },
          },
        }),
      ),
  });
  return (
    <Stack gap="xs">
      <Group justify="space-between">
        <Title order={3} size="h4">
          State over time
        </Title>
        <SegmentedControl
          size="xs"
          aria-label="Time range"
          value={range}
          onChange={(value) => setRange(value as Range)}
          data={[
            { value: '1h', label: '1 hour' },
            { value: '24h', label: '24 hours' },
            { value: '7d', label: '7 days' },
          ]}
        />
      </Group>
      <QueryState
        query={history}
        isEmpty={(h) => h.items.length === 0}
        empty={
          <Text c="dimmed">
            No state reports in this time: the agent reports CPU, memory, disk and temperature while it is
            connected (the server keeps one sample a minute for 7 days).
          </Text>
        }
      >
        {(h) => <Charts samples={h.items} since={h.since} />}
      </QueryState>
    </Stack>
  );
}

function Charts({ samples, since }: { samples: Sample[]; since: string }) {
  const charts = useMemo(() => {
    const times = samples.map((s) => Date.parse(s.at) / 1000);
    const all = [
      { label: 'CPU', color: '#1c7ed6', unit: ' %', values: samples.map((s) => s.cpuPercent) },
      { label: 'Memory', color: '#7048e8', unit: ' %', values: samples.map((s) => percent(s.memory)) },
      { label: 'Disk', color: '#0ca678', unit: ' %', values: samples.map((s) => percent(s.disk)) },
      {
        label: 'Temperature',
        color: '#e8590c',
        unit: ' °C',
        values: samples.map((s) => s.temperatureCelsius),
      },
    ];
    // A device without a sensor (or a disk figure) reports none: no empty chart for it.
    return {
      times,
      window: [Date.parse(since) / 1000, Date.now() / 1000] as [number, number],
      shown: all.filter((c) => c.values.some((v) => v !== null)),
    };
  }, [samples, since]);
  return (
    <>
      <Text size="sm" c="dimmed" data-testid="state-samples">
        {samples.length === 1 ? '1 sample' : `${samples.length} samples`}
      </Text>
      <SimpleGrid cols={{ base: 1, md: 2 }}>
        {charts.shown.map((chart) => (
          <div key={chart.label}>
            <Text size="sm" fw={600}>
              {chart.label}
            </Text>
            <Suspense fallback={<Skeleton height={160} />}>
              <TimeChart
                label={`${chart.label} over time, ${samples.length} samples`}
                times={charts.times}
                series={[{ label: chart.label, values: chart.values, color: chart.color }]}
                height={160}
                timeRange={charts.window}
                unit={chart.unit}
                {...(chart.unit === ' %' ? { range: [0, 100] as [number, number] } : {})}
              />
            </Suspense>
          </div>
        ))}
      </SimpleGrid>
    </>
  );
}
