/**
 * Sessions the OpenSSH bastion opens for people (`fleetgate ssh-proxy`, sshd's forced command) hold only while
 * the bastion's service key does: revoking the key (or its expiry) ends the sessions opened through it. The
 * forced command runs here as sshd would start it (a child process with `SSH_ORIGINAL_COMMAND` and the service
 * key), without sshd itself: the route, the credential and the client are the real ones, against a real server
 * and a real agent (in-process, over real sockets).
 */
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Agent } from '@fleetgate/agent';
import { enrollAgent, removeTemporaryDirs, waitFor } from '@fleetgate/agent/test/helpers.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ListeningServer, startListeningServer } from '../listening.ts';
import { api as callApi, keygen } from '../ssh/openssh-tools.ts';
import { type RunningCli, runCli, within } from '../tunnel/helpers.ts';

/** A running `fleetgate ssh-proxy`, its standard input the test's. */
type Proxy = RunningCli<ChildProcessWithoutNullStreams>;

describe('OpenSSH-mode sessions and the service key they were opened through', { timeout: 120_000 }, () => {
  let server: ListeningServer;
  let dir: string;
  let agent: Agent | undefined;
  let uuid: string;
  let sshKeyId: number;

  const api = (method: string, url: string, body?: unknown) => callApi(server, method, url, body);

  /** A new service credential for the bastion (`api-keys create <name> --service openssh`). */
  const serviceKey = async (name: string): Promise<{ id: number; key: string }> =>
    api('POST', '/api/v1/api-keys', { name, service: 'openssh' });

  /** The forced command sshd runs for the admin's key: `<device> cat`, through `key`. */
  function sshProxy(key: string): Proxy {
    // As sshd starts it: an environment of its own, not this process's.
    return runCli(['ssh-proxy', String(sshKeyId)], {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        FLEETGATE_SERVER: server.url,
        FLEETGATE_TOKEN: key,
        SSH_ORIGINAL_COMMAND: `${uuid} cat`,
      },
      stdin: 'pipe',
    });
  }

  /** Writes a line to the remote `cat` and waits until it comes back: the session is live. */
  async function echoes(proxy: Proxy, line: string): Promise<void> {
    proxy.child.stdin.write(`${line}\n`);
    await waitFor(
      () => proxy.stdout().includes(`${line}\n`),
      20_000,
      `"${line}" back through the session (stderr: ${proxy.stderr()})`,
    );
  }

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-openssh-sessions-'));
    server = await startListeningServer({ flags: { presenceFlushMs: 50 } });
    const key = await keygen(dir, 'id_admin');
    await api('POST', '/api/v1/ssh-keys', { publicKey: fs.readFileSync(`${key}.pub`, 'utf8') });
    [sshKeyId] = (await api('GET', '/api/v1/ssh-keys')).items.map((k: { id: number }) => k.id);
    const fleet = await api('POST', '/api/v1/fleets', {
      orgId: 1,
      name: 'bastion-fleet',
      defaultDeviceType: 'generic-amd64',
    });
    const provisioning = await api('POST', `/api/v1/fleets/${fleet.id}/provisioning-keys`, {
      name: 'bastion',
    });
    const enrolled = await enrollAgent(
      server.url,
      provisioning.key,
      { agentVersion: '0.1.0-openssh-sessions' },
      async (id) => (await api('GET', `/api/v1/devices/${id}`)).status === 'online',
    );
    agent = enrolled.agent;
    uuid = enrolled.uuid;
  }, 60_000);

  afterAll(async () => {
    await agent?.stop();
    await server?.close();
    removeTemporaryDirs();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('revoking the service key ends the sessions opened through it; those through another key go on', async () => {
    const revoked = await serviceKey('bastion-a');
    const kept = await serviceKey('bastion-b');
    const a = sshProxy(revoked.key);
    const b = sshProxy(kept.key);
    try {
      await Promise.all([echoes(a, 'through a'), echoes(b, 'through b')]);
      await api('DELETE', `/api/v1/api-keys/${revoked.id}`);

      // The person's `cat` through the revoked key is cut off, and the forced command says why (sshd passes
      // its stderr and exit status 255 on to the person's ssh).
      expect(await within(a.exited, 10_000)).toBe(255);
      expect(a.stderr()).toMatch(/access revoked: the service key it was opened through was revoked/);
      // The other bastion's key still holds: its session goes on, and ends normally.
      await echoes(b, 'still through b');
      b.child.stdin.end();
      expect(await within(b.exited, 10_000)).toBe(0);

      // The sessions' ends are recorded as they close.
      const outcomes = await waitFor(
        async () => {
          const sessions = await api('GET', '/api/v1/sessions?surface=openssh&limit=100');
          const ends = sessions.items.map((s: { outcome: string | null }) => s.outcome);
          return ends.length > 0 && !ends.includes(null) ? ends : undefined;
        },
        5000,
        'the sessions recorded as ended',
      );
      // One ended for the revoked key; the other as the person left (`closed`, or `reset: connection-closed`
      // when the forced command's connection closes before the stream's end crosses it).
      const revokedEnds = outcomes.filter((o: string) => o.startsWith('access revoked'));
      expect(revokedEnds).toEqual([
        expect.stringMatching(/^access revoked: the service key it was opened through was revoked/),
      ]);
      expect(outcomes).toHaveLength(2);
    } finally {
      a.child.kill();
      b.child.kill();
    }
  });

  it('a service key past its expiry ends its sessions at the next check', async () => {
    const expiring = await serviceKey('bastion-expiring');
    const c = sshProxy(expiring.key);
    try {
      await echoes(c, 'before expiry');
      // Keys expire in whole days: this one's last day is over, as if time had passed.
      await server.database.db
        .updateTable('api_keys')
        .set({ expires_at: Date.now() - 1000 })
        .where('id', '=', expiring.id)
        .execute();
      // Live sessions are checked every minute, and at once after any change to access: another key made.
      await serviceKey('bastion-next');
      expect(await within(c.exited, 10_000)).toBe(255);
      expect(c.stderr()).toMatch(
        /access revoked: the service key it was opened through was revoked, has expired/,
      );
    } finally {
      c.child.kill();
    }
  });
});
