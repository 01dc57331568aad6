/**
 * The part of autocannon 8's programmatic API the benchmark uses (the package ships no types). See
 * node_modules/autocannon/README.md, "API".
 */
declare module 'autocannon' {
  import type { EventEmitter } from 'node:events';

  export interface RawRequest {
    method?: string;
    path?: string;
    headers?: Record<string, string>;
    body?: string | Buffer;
  }

  export interface Options {
    url: string;
    connections?: number;
    /** Seconds. */
    duration?: number;
    headers?: Record<string, string>;
    /** `setupRequest` is called before every request and answers the request to send. */
    requests?: { setupRequest?: (request: RawRequest) => RawRequest }[];
  }

  /** Latencies in whole milliseconds; requests per second, sampled every second. */
  export interface Histogram {
    average: number;
    p50: number;
    p99: number;
  }

  export interface Result {
    latency: Histogram;
    /** `total`: the requests answered. */
    requests: Histogram & { total: number };
    errors: number;
    timeouts: number;
    non2xx: number;
    statusCodeStats: Record<string, { count: number }>;
  }

  export default function autocannon(
    options: Options,
    callback: (error: Error | null, result: Result) => void,
  ): EventEmitter & { stop(): void };
}
