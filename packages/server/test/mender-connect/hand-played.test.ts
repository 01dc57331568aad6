import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pack, unpack } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { signedAuthRequest, testKey } from '../auth-sets/signing.ts';
import { dialectUnderTest } from '../harness.ts';
import { type ListeningServer, requestJson, startListeningServer } from '../listening.ts';
import { clientOptions, keygen, run } from '../ssh/openssh-tools.ts';

/**
 * The SSH gateway's direct mode and the CONNECT proxy against a device that plays mender-connect by hand, byte for
 * byte, so that the edges the real mender-connect seldom shows are certain: a command's markers cut into one-byte
 * messages among the prompt and the echo, a shell the device refuses, a port it cannot reach. (The real
 * mender-connect: test/mender/mender-connect.test.ts.)
 */

const DEVAUTH = '/api/management/v2/devauth';

interface Message {
  hdr: { proto: number; typ?: string; sid?: string; props?: Record<string, unknown> };
  body?: Buffer;
}

describe(`a hand-played mender-connect device through the router (${dialectUnderTest})`, () => {
  let server: ListeningServer;
  let dir: string;
  let adminKey: string;
  let uuid: string;
  let device: WebSocket;
  /** How the device answers each message; set per test. */
  let play: (message: Message, send: (reply: Message) => void) => void = () => {};

  const api = (method: string, url: string, body?: unknown) =>
    requestJson(`${server.url}${url}`, { method, token: server.adminToken, ...(body ? { body } : {}) });

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-hand-played-'));
    server = await startListeningServer({ flags: { presenceFlushMs: 100 } });
    adminKey = await keygen(dir, 'id_admin');
    await api('POST', '/api/v1/ssh-keys', { publicKey: fs.readFileSync(`${adminKey}.pub`, 'utf8') });
    const key = testKey('ed25519');
    const identity = { mac: '02:aa:00:00:00:01' };
    const pre = await api('POST', `${DEVAUTH}/devices`, { identity_data: identity, pubkey: key.publicPem });
    uuid = String(pre.headers.location).split('/').pop()!;
    const { payload, headers } = signedAuthRequest(key, identity);
    const jwt = await (
      await fetch(`${server.url}/api/devices/v1/authentication/auth_requests`, {
        method: 'POST',
        headers,
        body: new Uint8Array(payload),
      })
    ).text();
    device = new WebSocket(`${server.url.replace(/^http/, 'ws')}/api/devices/v1/deviceconnect/connect`, {
      headers: { authorization: `Bearer ${jwt}` },
    });
    device.on('message', (data: Buffer) => {
      const message = unpack(data) as Message;
      play(message, (reply) => device.send(pack(reply)));
    });
    await new Promise((resolve, reject) => {
      device.once('open', resolve);
      device.once('error', reject);
    });
    for (let i = 0; i < 50; i++) {
      const shown = await api('GET', `/api/v1/devices/${uuid}`);
      if (shown.body.status === 'online') break;
      await new Promise((r) => setTimeout(r, 100));
    }
  }, 60_000);
  afterAll(async () => {
    device?.close();
    await server?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const ssh = (command: string[]) =>
    run('ssh', [
      ...clientOptions(adminKey),
      '-p',
      String(server.server.sshPort),
      `admin+${uuid}@127.0.0.1`,
      ...command,
    ]);

  it("gives a command's output and exit code even when every marker byte comes in a message of its own", async () => {
    const seen: Message[] = [];
    play = (message, send) => {
      seen.push(message);
      const { hdr } = message;
      if (hdr.proto !== 1) return;
      const shell = (body: string) =>
        send({
          hdr: { proto: 1, typ: 'shell', sid: hdr.sid, props: { status: 1 } },
          body: Buffer.from(body, 'latin1'),
        });
      if (hdr.typ === 'new')
        send({
          hdr: { proto: 1, typ: 'new', sid: hdr.sid, props: { status: 1 } },
          body: Buffer.from('Shell started'),
        });
      if (hdr.typ === 'shell') {
        const line = message.body!.toString();
        const nonce = /FGB:%s\\036' ([0-9a-f]+)/.exec(line)?.[1];
        if (!nonce) return;
        // A prompt, the echo of the typed line (with \\036 spelled out), then the output, one byte at a time.
        const stream = `root@device:~# ${line}\r\n\x1eFGB:${nonce}\x1ehello from \x1e the device\n\x1eFGE:${nonce}:7\x1e`;
        for (const byte of stream) shell(byte);
        shell('logout\r\n');
        send({
          hdr: { proto: 1, typ: 'stop', sid: hdr.sid, props: { status: 2 } },
          body: Buffer.from('EOF'),
        });
      }
    };
    const result = await ssh(['echo', 'anything']);
    expect(result).toMatchObject({ code: 7, stdout: 'hello from \x1e the device\n' });
    const spawn = seen.find((m) => m.hdr.proto === 1 && m.hdr.typ === 'new')!;
    // The person's id, and a terminal size, as Mender's server sends them.
    expect(spawn.hdr.props).toMatchObject({
      user_id: expect.any(String),
      terminal_width: 80,
      terminal_height: 24,
    });
    // The session's shell is stopped on the device once it ended (freeing the device's one shell per user).
    expect(seen.some((m) => m.hdr.proto === 1 && m.hdr.typ === 'stop' && m.hdr.sid === spawn.hdr.sid)).toBe(
      true,
    );
  });

  it('tells the person why the device refused a shell', async () => {
    play = (message, send) => {
      if (message.hdr.proto === 1 && message.hdr.typ === 'new')
        send({
          hdr: { proto: 1, typ: 'new', sid: message.hdr.sid, props: { status: 2 } },
          body: Buffer.from('user has too many open sessions'),
        });
    };
    const result = await ssh(['true']);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/too many open sessions/);
  });

  it("answers the CONNECT proxy 502 with the device's reason when it cannot reach the port", async () => {
    await api('PUT', `/api/v1/devices/${uuid}/allowed-ports`, { ports: [8080] });
    const key = (await api('POST', '/api/v1/api-keys', { name: 'proxy' })).body.key;
    play = (message, send) => {
      const { hdr } = message;
      if (hdr.proto === 0xffff && hdr.typ === 'open')
        send({
          hdr: { proto: 0xffff, typ: 'accept', sid: hdr.sid },
          body: pack({ version: 1, protocols: [2, 3] }),
        });
      if (hdr.proto === 3 && hdr.typ === 'new') {
        expect(unpack(message.body!)).toEqual({
          remote_host: '127.0.0.1',
          remote_port: 8080,
          protocol: 'tcp',
        });
        send({
          hdr: { proto: 3, typ: 'error', sid: hdr.sid },
          body: pack({ err: 'dial tcp 127.0.0.1:8080: connect: connection refused', msgtype: 'new' }),
        });
      }
    };
    const answer = await run('curl', [
      '--silent',
      '--show-error',
      '-x',
      `http://127.0.0.1:${server.server.proxyPort}`,
      '-U',
      `admin@example.test:${key}`,
      '-w',
      '%{http_code}',
      `http://${uuid}.devices:8080/`,
    ]);
    expect(answer.stdout).toMatch(/502$/);
    expect(answer.stdout).toMatch(/connection refused/);
  });

  it('answers file transfer refusals as the agent does: a directory 409, a denied write 403', async () => {
    play = (message, send) => {
      const { hdr } = message;
      if (hdr.proto === 0xffff && hdr.typ === 'open')
        send({
          hdr: { proto: 0xffff, typ: 'accept', sid: hdr.sid },
          body: pack({ version: 1, protocols: [2, 3] }),
        });
      // A directory: Go's os.ModeDir (1 << 31) with its permissions.
      if (hdr.proto === 2 && hdr.typ === 'stat')
        send({
          hdr: { proto: 2, typ: 'file_info', sid: hdr.sid },
          body: pack({ path: '/etc', mode: 2 ** 31 + 0o755, size: 4096 }),
        });
      if (hdr.proto === 2 && hdr.typ === 'put_file')
        send({
          hdr: { proto: 2, typ: 'error', sid: hdr.sid },
          body: pack({
            err: 'failed to create target file: open /root/x: permission denied',
            msgtype: 'put_file',
          }),
        });
    };
    const url = (file: string) => `/api/v1/devices/${uuid}/files?path=${encodeURIComponent(file)}`;
    const directory = await api('GET', url('/etc'));
    expect(directory.status, directory.text).toBe(409);
    expect(directory.text).toMatch(/not a regular file/);
    const denied = await fetch(`${server.url}${url('/root/x')}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${server.adminToken}` },
      body: 'some bytes',
    });
    expect(denied.status).toBe(403);
    expect(await denied.text()).toMatch(/permission denied/);
  });

  it('refuses sftp with a reason: mender-connect has no such service', async () => {
    play = () => {};
    const result = await run(
      'sftp',
      [...clientOptions(adminKey), '-P', String(server.server.sshPort), '-b', '-', `admin+${uuid}@127.0.0.1`],
      {
        input: 'ls\n',
      },
    );
    expect(result.code).not.toBe(0);
  });
});
