import { Box, useComputedColorScheme } from '@mantine/core';
import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

/** One line of a chart: its legend label, its values (null for a gap) and its colour. */
export interface ChartSeries {
  label: string;
  values: (number | null)[];
  color: string;
}

export interface TimeChartProps {
  /** What the chart shows, read by screen readers (a canvas has no text of its own). */
  label: string;
  /** Epoch seconds, ascending, one per value of every series. */
  times: number[];
  series: ChartSeries[];
  /** Pixels; default 200. */
  height?: number;
  /** Draw bars (counts per bucket) instead of lines. */
  bars?: boolean;
  /** The y axis' unit after each value, e.g. " %" or " °C". */
  unit?: string;
  /** Fixed y range, e.g. [0, 100] for percentages; default: from the data. */
  range?: [number, number];
  /** The time shown, in epoch seconds: the window asked for, not just the samples' span (one sample is a point). */
  timeRange?: [number, number];
}

/**
 * A time-series chart drawn by uPlot (a canvas, ~50 KB): sized to its container and redrawn when it resizes,
 * coloured from the page's text colour so it reads in light and dark. Kept in its own module so the pages that
 * draw charts load it lazily and the first page stays small.
 */
export function TimeChart({
  label,
  times,
  series,
  height = 200,
  bars,
  unit = '',
  range,
  timeRange,
}: TimeChartProps) {
  const container = useRef<HTMLDivElement>(null);
  // Drawn again when light/dark changes: the canvas takes its axis colour from the page's text when drawn.
  const scheme = useComputedColorScheme('light');
  useEffect(() => {
    const element = container.current;
    if (!element) return;
    const ink = getComputedStyle(element).color;
    const grid = { stroke: scheme === 'dark' ? 'rgba(255,255,255,0.12)' : 'rgba(0,0,0,0.1)', width: 1 };
    const axis = { stroke: ink, grid, ticks: grid };
    const paths = bars ? uPlot.paths.bars?.({ size: [0.8, 24], gap: 1 }) : undefined;
    const chart = new uPlot(
      {
        width: Math.max(element.clientWidth, 200),
        height,
        // Bars are counts: from 0, whole numbers only.
        scales: {
          x: timeRange ? { time: true, range: () => timeRange } : { time: true },
          y: range ? { range } : bars ? { range: (_u, _min, max) => [0, Math.max(1, max)] } : {},
        },
        axes: [
          axis,
          {
            ...axis,
            size: 60,
            ...(bars ? { incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000] } : {}),
            values: (_u, ticks) => ticks.map((t) => `${round(t)}${unit}`),
          },
        ],
        series: [
          {},
          ...series.map((s) => ({
            label: s.label,
            stroke: s.color,
            fill: bars ? s.color : `${s.color}22`,
            width: bars ? 0 : 2,
            ...(paths ? { paths } : {}),
            points: { show: !bars && times.length < 60 },
            value: (_u: uPlot, v: number | null) => (v === null ? '–' : `${round(v)}${unit}`),
          })),
        ],
        legend: { live: true },
      },
      [times, ...series.map((s) => s.values)],
      element,
    );
    const resize = new ResizeObserver(() =>
      chart.setSize({ width: Math.max(element.clientWidth, 200), height }),
    );
    resize.observe(element);
    return () => {
      resize.disconnect();
      chart.destroy();
    };
  }, [times, series, height, bars, unit, range, timeRange, scheme]);
  return <Box ref={container} role="img" aria-label={label} data-chart={label} />;
}

function round(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}
