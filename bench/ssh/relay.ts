/**
 * A diagnostic jump host for bench/ssh: the SSH gateway's protocol layer without the tunnel. The same ssh2
 * server as fleetgate's gateway (same package, same settings: ssh2's default algorithms, an Ed25519 host key,
 * ident `fleetgate`), authenticating one public key, whose `direct-tcpip` channels are bridged (with the same
 * `bridge` as `StreamSession.relay`) straight to a TCP connection on 127.0.0.1, instead of through
 * the stream router, the WebSocket tunnel and the agent. Comparing it with fleetgate and with a plain sshd tells what
 * the gateway's SSH side costs and what the tunnel behind it costs.
 *
 * Forked by bench/ssh/run.ts as `relay.ts <host key file> <authorized public key file>`; sends its port.
 */
import { timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import { bridge } from '@fleetgate/protocol';
import ssh2 from 'ssh2';

const [hostKeyFile, publicKeyFile] = process.argv.slice(2);
if (!hostKeyFile || !publicKeyFile) throw new Error('usage: relay.ts <host key file> <public key file>');
const parsed = ssh2.utils.parseKey(fs.readFileSync(publicKeyFile, 'utf8'));
const allowed = Array.isArray(parsed) ? parsed[0] : parsed;
if (!allowed || allowed instanceof Error) throw new Error(`cannot read ${publicKeyFile}`);
const allowedBlob = allowed.getPublicSSH();

const server = new ssh2.Server({ hostKeys: [fs.readFileSync(hostKeyFile)], ident: 'fleetgate' }, (client) => {
  client.on('error', () => {});
  client.on('authentication', (context) => {
    if (
      context.method !== 'publickey' ||
      context.key.data.length !== allowedBlob.length ||
      !timingSafeEqual(context.key.data, allowedBlob)
    ) {
      context.reject(['publickey']);
      return;
    }
    if (!context.signature || !context.blob) {
      context.accept();
      return;
    }
    if (allowed.verify(context.blob, context.signature, context.hashAlgo) === true) context.accept();
    else context.reject(['publickey']);
  });
  client.on('tcpip', (accept, reject, target) => {
    const socket = net.connect(target.destPort, '127.0.0.1');
    socket.once('error', () => reject());
    socket.once('connect', () => {
      socket.removeAllListeners('error');
      bridge(accept(), socket).catch(() => {});
    });
  });
});
server.listen(0, '127.0.0.1', () => {
  process.send?.({ port: (server.address() as AddressInfo).port });
});
process.on('disconnect', () => server.close(() => process.exit(0)));
