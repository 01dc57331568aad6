import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type ClientRequest, ManagementConnection } from './management.ts';

/** fleetgate's end of a management connection, with the OpenVPN end played by a plain socket. */
async function connected() {
  const socketPath = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-mgmt-')), 'm.sock');
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  const openvpn = net.connect(socketPath);
  const [ours] = (await Promise.all([
    new Promise((resolve) => server.once('connection', resolve)),
    new Promise((resolve) => openvpn.once('connect', resolve)),
  ])) as unknown as [net.Socket];
  const seen = {
    requests: [] as ClientRequest[],
    established: [] as [number, Map<string, string>][],
    disconnected: [] as [number, Map<string, string>][],
    closed: 0,
    errors: [] as string[],
  };
  const connection = new ManagementConnection(
    ours,
    {
      request: (r) => seen.requests.push(r),
      established: (cid, env) => seen.established.push([cid, env]),
      disconnected: (cid, env) => seen.disconnected.push([cid, env]),
      closed: () => seen.closed++,
    },
    (message) => seen.errors.push(message),
  );
  let written = '';
  openvpn.setEncoding('utf8');
  openvpn.on('data', (chunk: string) => (written += chunk));
  cleanups.push(() => {
    openvpn.destroy();
    server.close();
  });
  return { connection, openvpn, seen, written: () => written };
}

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

const until = async (condition: () => boolean) => {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(condition()).toBe(true);
};

describe('the OpenVPN management connection', () => {
  it("reads a client's request with its variables, even split across reads, and answers in OpenVPN's words", async () => {
    const { connection, openvpn, seen, written } = await connected();
    openvpn.write(
      ">INFO:OpenVPN Management Interface Version 5 -- type 'help' for more info\r\n>CLIENT:CONN",
    );
    openvpn.write(
      'ECT,7,0\n>CLIENT:ENV,username=0123456789abcdef0123456789abcdef\n>CLIENT:ENV,password=a=b,c\n',
    );
    openvpn.write('>CLIENT:ENV,untrusted_port=40000\n>CLIENT:ENV,END\n');
    await until(() => seen.requests.length === 1);
    const [request] = seen.requests as [ClientRequest];
    expect(request).toMatchObject({ kind: 'connect', cid: 7, kid: 0 });
    // A value keeps everything after the first '=' (keys and passwords may hold '=' and ',').
    expect(request.env.get('password')).toBe('a=b,c');
    expect(request.env.get('untrusted_port')).toBe('40000');

    const allowed = connection.allow(7, 0);
    const denied = connection.deny(8, 1, 'unknown "device"\nor key');
    const killed = connection.kill(7, 'HALT');
    await until(() => written().split('\n').length === 4);
    expect(written()).toBe(
      'client-auth-nt 7 0\nclient-deny 8 1 "unknown  device  or key" "unknown  device  or key"\nclient-kill 7 HALT\n',
    );
    openvpn.write('SUCCESS: client-auth command succeeded\nERROR: client-deny command failed\n');
    openvpn.write('>CLIENT:ESTABLISHED,7\n>CLIENT:ENV,ifconfig_pool_remote_ip=10.240.0.3\n>CLIENT:ENV,END\n');
    openvpn.write('SUCCESS: client-kill command succeeded\n');
    // Answers go to the commands in order, notifications in between notwithstanding.
    expect(await allowed).toBe('SUCCESS: client-auth command succeeded');
    expect(await denied).toBe('ERROR: client-deny command failed');
    expect(await killed).toBe('SUCCESS: client-kill command succeeded');
    expect(seen.established[0]?.[1].get('ifconfig_pool_remote_ip')).toBe('10.240.0.3');

    openvpn.write('>CLIENT:DISCONNECT,7\n>CLIENT:ENV,bytes_sent=12\n>CLIENT:ENV,END\n');
    await until(() => seen.disconnected.length === 1);
    expect(seen.disconnected[0]?.[0]).toBe(7);
  });

  it('closes on a line without end or a variable outside a client block, and answers later commands with an error', async () => {
    const first = await connected();
    first.openvpn.write('>CLIENT:ENV,username=x\n');
    await until(() => first.seen.closed === 1);
    expect(first.seen.errors).toEqual(['a >CLIENT:ENV line outside a client block']);
    expect(await first.connection.allow(1, 0)).toMatch(/^ERROR: /);

    const second = await connected();
    second.openvpn.write('x'.repeat(70 * 1024));
    await until(() => second.seen.closed === 1);
    expect(second.seen.errors).toEqual(['a line longer than 65536 characters']);
  });
});
