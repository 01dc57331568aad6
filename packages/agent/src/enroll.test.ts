import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readCredentials } from './credentials.ts';
import { ensureEnrolled } from './enroll.ts';
import { createLogger } from './log.ts';

describe('enrollment from a balena config.json', () => {
  it('keeps the balena uuid and key as registered credentials, without asking the server', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-agent-enroll-'));
    try {
      const uuid = 'b'.repeat(32);
      const credentials = await ensureEnrolled({
        // Nothing listens here: the credentials must come without a request.
        server: { url: 'http://127.0.0.1:9' },
        dataDir,
        deviceType: 'generic-amd64',
        enrollment: { method: 'balena-config', file: '/boot/config.json', uuid, deviceKey: 'k'.repeat(32) },
        agentVersion: '0.0.0',
        backoff: { baseMs: 1, capMs: 1 },
        log: createLogger('silent', () => {}),
      });
      const expected = { type: 'device-key', uuid, deviceKey: 'k'.repeat(32), registered: true };
      expect(credentials).toEqual(expected);
      expect(readCredentials(dataDir)).toEqual(expected);
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
