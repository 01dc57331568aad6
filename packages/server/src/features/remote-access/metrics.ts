import client from 'prom-client';

/**
 * The router's stream metrics: streams asked for by outcome, bytes relayed each way, streams open now. Made
 * with the router, on no registry until `register` puts them on the server's /metrics.
 */
export class StreamMetrics {
  /** Streams open now (relayed, or opened and not yet relayed). */
  open = 0;
  readonly streams = new client.Counter({
    name: 'fleetgate_tunnel_streams_total',
    help: 'Streams to device ports asked for, by outcome',
    labelNames: ['outcome'] as const,
    registers: [],
  });
  readonly bytes = new client.Counter({
    name: 'fleetgate_tunnel_stream_bytes_total',
    help: 'Bytes relayed over streams to device ports, by direction',
    labelNames: ['direction'] as const,
    registers: [],
  });

  register(registry: client.Registry): void {
    const metrics = this;
    registry.registerMetric(this.streams);
    registry.registerMetric(this.bytes);
    new client.Gauge({
      name: 'fleetgate_tunnel_streams_open',
      help: 'Streams to device ports open now',
      registers: [registry],
      collect() {
        this.set(metrics.open);
      },
    });
  }
}
