import { DIAGNOSTICS_SERVICE, diagnosticsReportSchema } from '@fleetgate/protocol';
import { afterAll, describe, expect, it } from 'vitest';
import { removeTemporaryDirs, runAgent } from './helpers.ts';
import { readUntilEnd, startTestHub } from './hub.ts';

afterAll(() => removeTemporaryDirs());

/**
 * The agent's diagnostics service over a real tunnel (a test hub speaking the protocol): one JSON report, then the
 * end of the stream; served where the exec service is off, since the checks are the agent's own and read-only.
 */
describe('the diagnostics service', () => {
  it('answers one valid report and ends the stream, even with exec disabled', async () => {
    const hub = await startTestHub();
    const agent = runAgent(hub.url, { exec: { enabled: false } });
    try {
      const connection = await hub.nextConnection();
      await connection.hello;
      // Shell access is off on this device…
      await expect(connection.open({ exec: { command: 'id' } })).rejects.toMatchObject({
        code: 'not-allowed',
      });
      // …diagnostics are not.
      const stream = await connection.open({ service: DIAGNOSTICS_SERVICE });
      stream.end();
      const report = diagnosticsReportSchema.parse(JSON.parse((await readUntilEnd(stream)).toString('utf8')));
      expect(report).toMatchObject({ version: 1, agentVersion: '0.1.0-test' });
      expect(report.checks).toHaveLength(10);
      // The hub is the "server" here: reachable over TCP, and the agent's own tunnel is up.
      expect(report.checks.find((c) => c.id === 'tcp')?.status).toBe('ok');
      expect(report.checks.find((c) => c.id === 'agent')?.status).toBe('ok');
    } finally {
      await agent.stop();
      await hub.close();
    }
  }, 30_000);
});
