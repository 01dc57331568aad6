import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../harness.ts';
import { check, createUser } from './helpers.ts';

/** People's SSH public keys, registered for the SSH gateway. */
let server: TestServer;
let alice: string;
let bob: string;

beforeAll(async () => {
  server = await startTestServer();
  await createUser(server, 'alice@example.test', 'alice password 1');
  await createUser(server, 'bob@example.test', 'bob password 1');
  alice = await server.login('alice@example.test', 'alice password 1');
  bob = await server.login('bob@example.test', 'bob password 1');
});

afterAll(async () => {
  await server?.close();
});

/** A fresh ed25519 public key as one `id_ed25519.pub` line. */
function ed25519Line(comment: string): string {
  const x = Buffer.from(generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }).x!, 'base64url');
  const field = (bytes: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, bytes.length]), bytes]);
  const blob = Buffer.concat([field(Buffer.from('ssh-ed25519')), field(x)]);
  return `ssh-ed25519 ${blob.toString('base64')} ${comment}`;
}

describe('SSH keys', () => {
  it('are registered with their fingerprint, listed and removed', async () => {
    const line = ed25519Line('alice@laptop');
    const added = check(
      await server.api('POST', '/api/v1/ssh-keys', { token: alice, body: { publicKey: line } }),
      201,
    );
    expect(added).toMatchObject({ name: 'alice@laptop', algorithm: 'ssh-ed25519', lastUsedAt: null });
    expect(added.publicKey).toBe(line.split(' ').slice(0, 2).join(' '));
    expect(added.fingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);

    const named = check(
      await server.api('POST', '/api/v1/ssh-keys', {
        token: alice,
        body: { publicKey: ed25519Line(''), name: 'workstation' },
      }),
      201,
    );
    expect(named.name).toBe('workstation');

    const listed = check(await server.api('GET', '/api/v1/ssh-keys', { token: alice }), 200);
    expect(listed.items.map((k: { id: number }) => k.id)).toEqual([added.id, named.id]);
    expect(check(await server.api('GET', '/api/v1/ssh-keys', { token: bob }), 200).items).toEqual([]);

    expect((await server.api('DELETE', `/api/v1/ssh-keys/${added.id}`, { token: alice })).status).toBe(204);
    const after = check(await server.api('GET', '/api/v1/ssh-keys', { token: alice }), 200);
    expect(after.items.map((k: { id: number }) => k.id)).toEqual([named.id]);
    expect((await server.api('DELETE', `/api/v1/ssh-keys/${added.id}`, { token: alice })).status).toBe(404);
  });

  it('belong to one person: a key already registered is refused, even for someone else', async () => {
    const line = ed25519Line('shared');
    check(await server.api('POST', '/api/v1/ssh-keys', { token: alice, body: { publicKey: line } }), 201);
    const again = await server.api('POST', '/api/v1/ssh-keys', {
      token: bob,
      body: { publicKey: line.replace('shared', 'other comment') },
    });
    expect(again.status).toBe(409);
    expect(check(await server.api('GET', '/api/v1/ssh-keys', { token: bob }), 200).items).toEqual([]);
  });

  it('cannot be removed by someone else', async () => {
    const added = check(
      await server.api('POST', '/api/v1/ssh-keys', {
        token: alice,
        body: { publicKey: ed25519Line('mine') },
      }),
      201,
    );
    expect((await server.api('DELETE', `/api/v1/ssh-keys/${added.id}`, { token: bob })).status).toBe(404);
    const listed = check(await server.api('GET', '/api/v1/ssh-keys', { token: alice }), 200);
    expect(listed.items.map((k: { id: number }) => k.id)).toContain(added.id);
  });

  it('refuse what is not a usable public key with 400 and a reason', async () => {
    const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' });
    const mp = (b64: string) => {
      const bytes = Buffer.from(b64, 'base64url');
      return (bytes[0]! & 0x80) !== 0 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes;
    };
    const field = (bytes: Buffer) => {
      const length = Buffer.alloc(4);
      length.writeUInt32BE(bytes.length);
      return Buffer.concat([length, bytes]);
    };
    const weakRsa = `ssh-rsa ${Buffer.concat([field(Buffer.from('ssh-rsa')), field(mp(rsa1024.e!)), field(mp(rsa1024.n!))]).toString('base64')}`;
    for (const [publicKey, reason] of [
      ['-----BEGIN OPENSSH PRIVATE KEY-----', /invalid SSH public key/],
      ['ssh-dss AAAAB3NzaC1kc3MAAACBAP', /unsupported key type/],
      [weakRsa, /2048/],
      ['ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB', /invalid SSH public key/],
    ] as const) {
      const answer = await server.api('POST', '/api/v1/ssh-keys', { token: alice, body: { publicKey } });
      expect(answer.status, publicKey).toBe(400);
      expect(answer.body.error.message).toMatch(reason);
    }
  });
});
