/**
 * The baseline for bench/tunnel's throughput: a plain TCP relay in Node, in a process of its own as each of
 * fleetgate's hops is. Every connection to 127.0.0.1:<listen port> is piped to 127.0.0.1:<target port>, with
 * backpressure and half-close both ways, and nothing else. It sends `{ port }` to the parent when listening.
 *
 *   tsx bench/tunnel/relay.ts <target port>
 */
import net from 'node:net';

const targetPort = Number(process.argv[2]);
const server = net.createServer({ allowHalfOpen: true }, (client) => {
  const target = net.connect({ host: '127.0.0.1', port: targetPort, allowHalfOpen: true });
  client.pipe(target);
  target.pipe(client);
  client.on('error', () => target.destroy());
  target.on('error', () => client.destroy());
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address() as net.AddressInfo;
  process.send!({ port: address.port });
});
process.on('disconnect', () => process.exit(0));
