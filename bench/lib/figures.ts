/**
 * Figures the benchmarks compute: percentiles of a sample, and the CPU time of a process from /proc (Linux),
 * for processes the bench did not start as Node children it can ask (agents, relays, sshd).
 */
import fs from 'node:fs';

/** The `p`th percentile (0–100) of `values`, nearest rank. */
export function percentile(values: number[], p: number): number {
  if (!values.length) throw new Error('no values to take a percentile of');
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/**
 * CPU time (user + system) of process `pid` and of the children it has reaped, in seconds: utime + stime +
 * cutime + cstime of /proc/<pid>/stat (fields 14–17 of proc(5)), at Linux's 100 ticks per second.
 */
export function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Counted from the state (field 3) at index 0.
  return [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0) / 100;
}
