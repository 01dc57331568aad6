/**
 * The web terminal's WebSocket with a real client (`ws`, as a browser speaks it): a real fleetgate server, a real
 * agent (in-process, over real sockets) running real shells in ptys, on SQLite and on PostgreSQL.
 */
import type { Agent } from '@fleetgate/agent';
import { enrollAgent, removeTemporaryDirs, temporaryDir, waitFor } from '@fleetgate/agent/test/helpers.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ADMIN_EMAIL } from '../harness.ts';
import { type ListeningServer, requestJson, startListeningServer } from '../listening.ts';

/** One terminal as the test drives it: what it printed, the text frames, and how it closed. */
interface Terminal {
  ws: WebSocket;
  output(): string;
  events: Record<string, unknown>[];
  /** The session id from the first text frame. */
  session(): Promise<string>;
  type(text: string): void;
  resize(cols: number, rows: number): void;
  /** Waits until the output matches `pattern`. */
  read(pattern: RegExp): Promise<RegExpExecArray | undefined>;
  closed: Promise<{ code: number; reason: string }>;
}

describe('web terminal', () => {
  let server: ListeningServer;
  let agent: Agent;
  let uuid: string;
  let operatorToken: string;
  let viewerToken: string;
  let betaToken: string;
  let operatorId: number;
  let provisioningKey: string;
  const agents: Agent[] = [];

  const api = async (method: string, url: string, body?: unknown, token = server.adminToken) => {
    const answer = await requestJson(`${server.url}${url}`, { method, body, token });
    if (answer.status >= 300)
      throw new Error(`${method} ${url}: ${answer.status} ${answer.text.slice(0, 300)}`);
    return answer.body;
  };
  const login = async (email: string, password: string) =>
    (await api('POST', '/api/v1/auth/login', { email, password }, '')).token as string;
  /**
   * The device's shells start in an empty home: a login shell reads ~/.profile, and this machine's (pyenv init)
   * can wait many seconds on a lock other processes hold, which is no part of what is tested here.
   */
  const device = () => ({
    agentVersion: '0.1.0-terminal',
    baseEnv: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: temporaryDir(), LANG: 'C.UTF-8' },
  });
  const terminalUrl = (query = '') =>
    `${server.url.replace(/^http/, 'ws')}/api/v1/devices/${uuid}/terminal${query}`;

  /** Opens a terminal; `headers` carry the credential (Authorization, or Cookie + Origin as a browser sends). */
  const open = (headers: Record<string, string>, query = ''): Promise<Terminal> =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(terminalUrl(query), { headers });
      let output = '';
      const events: Record<string, unknown>[] = [];
      const closed = new Promise<{ code: number; reason: string }>((done) =>
        ws.once('close', (code, reason) => done({ code, reason: reason.toString() })),
      );
      ws.on('message', (data: Buffer, isBinary) => {
        if (isBinary) output += data.toString('utf8');
        else events.push(JSON.parse(data.toString('utf8')));
      });
      ws.once('unexpected-response', (_request, response) => {
        let body = '';
        response.on('data', (chunk: Buffer) => (body += chunk));
        response.on('end', () =>
          reject(
            Object.assign(new Error(`refused: ${response.statusCode} ${body}`), {
              status: response.statusCode,
              body,
            }),
          ),
        );
      });
      ws.once('error', reject);
      ws.once('open', () =>
        resolve({
          ws,
          output: () => output,
          events,
          session: () =>
            waitFor(() => events.find((e) => e.type === 'session')?.id as string, 5000, 'the session frame'),
          type: (text) => ws.send(Buffer.from(text, 'utf8')),
          resize: (cols, rows) => ws.send(JSON.stringify({ type: 'resize', cols, rows })),
          read: (pattern) =>
            waitFor(() => pattern.exec(output) ?? undefined, 10_000, `${pattern} in:\n${output}`),
          closed,
        }),
      );
    });
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  /** What refusing an upgrade answers: status and error code. */
  const refusal = async (opening: Promise<Terminal>) => {
    const error = (await opening.then(
      (t) => {
        t.ws.close();
        throw new Error('the terminal opened');
      },
      (e: unknown) => e,
    )) as { status: number; body: string };
    return { status: error.status, code: JSON.parse(error.body).error.code as string };
  };

  beforeAll(async () => {
    server = await startListeningServer({ flags: { presenceFlushMs: 50 } });
    const fleet = await api('POST', '/api/v1/fleets', {
      orgId: 1,
      name: 'terminal-fleet',
      defaultDeviceType: 'generic-amd64',
    });
    const { key } = await api('POST', `/api/v1/fleets/${fleet.id}/provisioning-keys`, { name: 'terminal' });
    provisioningKey = key;
    ({ agent, uuid } = await enrollAgent(
      server.url,
      key,
      device(),
      async (id) => (await api('GET', `/api/v1/devices/${id}`)).status === 'online',
    ));
    const operator = await api('POST', '/api/v1/orgs/1/members', {
      email: 'op@example.test',
      role: 'operator',
    });
    operatorId = operator.userId;
    operatorToken = await login('op@example.test', operator.password);
    const viewer = await api('POST', '/api/v1/orgs/1/members', {
      email: 'viewer@example.test',
      role: 'viewer',
    });
    viewerToken = await login('viewer@example.test', viewer.password);
    await api('POST', '/api/v1/users', { email: 'beta@example.test', password: 'beta owner password' });
    betaToken = await login('beta@example.test', 'beta owner password');
    await api('POST', '/api/v1/orgs', { name: 'Beta' }, betaToken);
    await api('PUT', '/api/v1/orgs/1/session-recording', { enabled: true });
  }, 60_000);

  afterAll(async () => {
    await Promise.all([agent, ...agents].map((a) => a?.stop()));
    await server?.close();
    removeTemporaryDirs();
  });

  it('runs a command in a shell on the device, reads its output and its exit status, and records the session', async () => {
    const terminal = await open(bearer(server.adminToken));
    const id = await terminal.session();
    terminal.type('echo $((6*7))\r');
    await terminal.read(/^42\r?$/m);
    terminal.type('exit 3\r');
    expect(await terminal.closed).toEqual({ code: 1000, reason: 'exited with code 3' });
    expect(terminal.events.at(-1)).toEqual({ type: 'exit', code: 3 });

    const session = await waitFor(async () => {
      const found = await api('GET', `/api/v1/sessions/${id}`);
      return found.live ? undefined : found;
    });
    expect(session).toMatchObject({
      surface: 'terminal',
      target: 'shell',
      port: null,
      device: { uuid },
      user: { label: ADMIN_EMAIL },
      outcome: 'closed',
    });
    expect(session.bytesFromDevice).toBeGreaterThan(0);
    const listed = await api('GET', '/api/v1/sessions?surface=terminal');
    expect(listed.items.map((s: { id: string }) => s.id)).toContain(id);

    const recording = await waitFor(async () => {
      const answer = await requestJson(`${server.url}/api/v1/sessions/${id}/recording`, {
        token: server.adminToken,
      });
      return answer.status === 200 && answer.text.includes('exit 3') ? answer.text : undefined;
    });
    const [header, ...events] = String(recording)
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(header).toMatchObject({ version: 2, width: 80, height: 24, env: { TERM: 'xterm-256color' } });
    expect(events.some(([, kind, text]) => kind === 'o' && /^42\r?$/m.test(text))).toBe(true);
  });

  /** An operator's recorded shell that printed `trail-42`, then exited; answers its session id. */
  const recordedShell = async () => {
    const terminal = await open(bearer(operatorToken));
    const id = await terminal.session();
    terminal.type('echo trail-$((6*7))\r');
    await terminal.read(/^trail-42\r?$/m);
    terminal.type('exit\r');
    await terminal.closed;
    return id;
  };

  it("gives a session's recording to those who may open a shell there, not to viewers or other organizations", async () => {
    const id = await recordedShell();
    const recordingOf = (token: string) =>
      requestJson(`${server.url}/api/v1/sessions/${id}/recording`, { token });
    await waitFor(async () =>
      (await recordingOf(operatorToken)).text.includes('trail-42') ? true : undefined,
    );
    // A viewer sees the session in lists but not what its shell showed; another organization not even that.
    expect((await recordingOf(viewerToken)).status).toBe(403);
    expect((await requestJson(`${server.url}/api/v1/sessions/${id}`, { token: viewerToken })).status).toBe(
      200,
    );
    expect((await recordingOf(betaToken)).status).toBe(404);
  });

  it("lists one session's audit trail with session=<id>, to those who may read it", async () => {
    const id = await recordedShell();
    const trail = await waitFor(async () => {
      const page = await api('GET', `/api/v1/audit?orgId=1&session=${id}`);
      return page.items.some((e: { action: string }) => e.action === 'device.stream.close')
        ? page
        : undefined;
    });
    const actions = (trail.items as { action: string }[]).map((e) => e.action).sort();
    expect(actions).toEqual(['device.stream.close', 'device.stream.open', 'session.recording.start']);
    for (const event of trail.items as { details: { session?: string }; resourceId: string }[]) {
      expect([event.details.session, event.resourceId]).toContain(id);
    }
    // Beta's owner may not read alpha's audit log, filtered or not.
    const beta = await requestJson(`${server.url}/api/v1/audit?orgId=1&session=${id}`, { token: betaToken });
    expect(beta.status).toBe(404);
    const betaOwn = await requestJson(`${server.url}/api/v1/audit?session=${id}`, { token: betaToken });
    expect(betaOwn.body.total).toBe(0);
    expect((await requestJson(`${server.url}/api/v1/audit?session=not-a-session`, {})).status).toBe(401);
    const malformed = await requestJson(`${server.url}/api/v1/audit?session=NOT-HEX`, {
      token: server.adminToken,
    });
    expect(malformed.status).toBe(400);
  });

  it('opens at the size asked for, and follows a resize (stty size)', async () => {
    const terminal = await open(bearer(operatorToken), '?cols=100&rows=30');
    terminal.type('stty size\r');
    await terminal.read(/^30 100\r?$/m);
    terminal.resize(132, 50);
    terminal.type('stty size\r');
    await terminal.read(/^50 132\r?$/m);
    terminal.type('exit\r');
    expect((await terminal.closed).code).toBe(1000);
  });

  it('takes the session cookie from its own origin only (cross-site WebSocket hijacking)', async () => {
    const cookie = `fleetgate_session=${server.adminToken}`;
    expect(await refusal(open({ cookie, origin: 'http://evil.example' }))).toEqual({
      status: 403,
      code: 'forbidden',
    });
    expect(await refusal(open({ cookie }))).toEqual({ status: 403, code: 'forbidden' });
    const terminal = await open({ cookie, origin: server.url });
    terminal.type('echo cookie-$((1+1))\r');
    await terminal.read(/^cookie-2\r?$/m);
    terminal.ws.close();
    expect(await refusal(open({}))).toEqual({ status: 401, code: 'unauthorized' });
  });

  it('is refused to a viewer (403), to another organization (404), and for sizes out of range (400)', async () => {
    expect(await refusal(open(bearer(viewerToken)))).toEqual({ status: 403, code: 'forbidden' });
    expect(await refusal(open(bearer(betaToken)))).toEqual({ status: 404, code: 'not_found' });
    expect(await refusal(open(bearer(operatorToken), '?cols=100000&rows=1'))).toMatchObject({ status: 400 });
    // The same URL without the upgrade says so too, for the UI to show the terminal or not.
    const access = (token: string) =>
      requestJson(`${server.url}/api/v1/devices/${uuid}/terminal`, { token }).then((a) => a.status);
    expect([await access(operatorToken), await access(viewerToken), await access(betaToken)]).toEqual([
      200, 403, 404,
    ]);
  });

  it('ends when an administrator terminates the session, saying so', async () => {
    const terminal = await open(bearer(operatorToken));
    const id = await terminal.session();
    terminal.type('echo ready\r');
    await terminal.read(/^ready\r?$/m);
    await api('POST', `/api/v1/sessions/${id}/terminate`);
    const closed = await terminal.closed;
    expect(closed).toEqual({ code: 4000, reason: `terminated by ${ADMIN_EMAIL}` });
    expect(terminal.events.at(-1)).toEqual({ type: 'ended', reason: `terminated by ${ADMIN_EMAIL}` });
    const session = await api('GET', `/api/v1/sessions/${id}`);
    expect(session).toMatchObject({ live: false, outcome: `terminated by ${ADMIN_EMAIL}` });
  });

  it('closes with a reason on bad input, and goes on serving', async () => {
    const notJson = await open(bearer(operatorToken));
    notJson.ws.send('not json');
    expect(await notJson.closed).toEqual({
      code: 1007,
      reason: 'a text frame must be a JSON control message',
    });
    const absurd = await open(bearer(operatorToken));
    absurd.ws.send(JSON.stringify({ type: 'resize', cols: 1e9, rows: 24 }));
    expect(await absurd.closed).toMatchObject({
      code: 1007,
      reason: expect.stringMatching(/^invalid control message: cols/),
    });
    const unknown = await open(bearer(operatorToken));
    unknown.ws.send(JSON.stringify({ type: 'shutdown' }));
    expect((await unknown.closed).code).toBe(1007);
    const huge = await open(bearer(operatorToken));
    huge.ws.send(Buffer.alloc(64 * 1024 + 1, 0x61));
    expect((await huge.closed).code).toBe(1009);
    const fine = await open(bearer(operatorToken));
    fine.type('echo still-$((2*3))\r');
    await fine.read(/^still-6\r?$/m);
    fine.ws.close();
  });

  it('ends when the person loses access (their role lowered to viewer)', async () => {
    const terminal = await open(bearer(operatorToken));
    terminal.type('echo before\r');
    await terminal.read(/^before\r?$/m);
    await api('PATCH', `/api/v1/orgs/1/members/${operatorId}`, { role: 'viewer' });
    const closed = await terminal.closed;
    expect(closed.code).toBe(4001);
    expect(closed.reason).toMatch(/^access revoked/);
    await api('PATCH', `/api/v1/orgs/1/members/${operatorId}`, { role: 'operator' });
  });

  it('ends when the device goes offline, saying so', async () => {
    const terminal = await open(bearer(server.adminToken));
    terminal.type('echo online\r');
    await terminal.read(/^online\r?$/m);
    await agent.stop();
    const closed = await terminal.closed;
    expect(closed.code).toBe(4002);
    expect(closed.reason).toMatch(/offline|reset/);
    await waitFor(async () => (await api('GET', `/api/v1/devices/${uuid}`)).status === 'offline');
    expect(await refusal(open(bearer(server.adminToken)))).toEqual({ status: 503, code: 'unavailable' });
  });

  it('ends when the server stops, saying so', async () => {
    const second = await enrollAgent(
      server.url,
      provisioningKey,
      device(),
      async (id) => (await api('GET', `/api/v1/devices/${id}`)).status === 'online',
    );
    agents.push(second.agent);
    uuid = second.uuid;
    const terminal = await open(bearer(server.adminToken));
    terminal.type('echo up\r');
    await terminal.read(/^up\r?$/m);
    // The tunnels close first when a server stops: the terminal must not blame the device.
    await server.server.close();
    expect(await terminal.closed).toEqual({
      code: 1001,
      reason: 'the server is stopping: reconnect in a moment',
    });
  });
});
