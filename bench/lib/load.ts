/**
 * HTTP load with autocannon, shared by the benchmarks: one run, and one measurement (an unrecorded warm-up,
 * then the run, with the server's CPU time per answered request).
 */
import autocannon, { type RawRequest, type Result } from 'autocannon';
import type { ServerProcess } from './server-process.ts';

export interface Load {
  label: string;
  connections: number;
  /** Headers of every request, beside those `next` answers. */
  headers?: Record<string, string>;
  /** What changes from one request to the next: each connection takes the next one. */
  next: () => RawRequest;
}

export interface Figures {
  rps: number;
  p50: number;
  p99: number;
  /** Server CPU time (user + system) per answered request: what other load on the machine disturbs least. */
  cpuMicros: number;
}

/** One autocannon run; stops early when `signal` is aborted. */
export function fire(url: string, load: Load, seconds: number, signal: AbortSignal): Promise<Result> {
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url,
        connections: load.connections,
        duration: seconds,
        ...(load.headers ? { headers: load.headers } : {}),
        requests: [{ setupRequest: (request) => ({ ...request, ...load.next() }) }],
      },
      (error, result) => {
        signal.removeEventListener('abort', stop);
        if (error) reject(error);
        else resolve(result);
      },
    );
    const stop = () => instance.stop();
    signal.addEventListener('abort', stop, { once: true });
  });
}

/**
 * At its deadline autocannon drops its connections with requests in flight, which the server still
 * answers: a pause keeps that tail out of the next measurement.
 */
export const settle = () => new Promise((resolve) => setTimeout(resolve, 500));

/**
 * `warmupSeconds` of load not counted, then `seconds` measured; throws on any non-2xx answer, socket error
 * or timeout.
 */
export async function measure(
  server: Pick<ServerProcess, 'url' | 'cpuMicros'>,
  load: Load,
  seconds: number,
  warmupSeconds: number,
  signal: AbortSignal,
): Promise<Figures> {
  await fire(server.url, load, warmupSeconds, signal);
  await settle();
  signal.throwIfAborted();
  const cpuBefore = await server.cpuMicros();
  const result = await fire(server.url, load, seconds, signal);
  await settle();
  const cpu = (await server.cpuMicros()) - cpuBefore;
  signal.throwIfAborted();
  if (result.non2xx > 0 || result.errors > 0 || result.timeouts > 0) {
    throw new Error(
      `${load.label}: ${result.non2xx} non-2xx answers, ${result.errors} errors, ${result.timeouts} timeouts ` +
        `(status codes ${JSON.stringify(result.statusCodeStats)})`,
    );
  }
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    cpuMicros: cpu / result.requests.total,
  };
}
