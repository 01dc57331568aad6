import net from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { SocketBudget } from './index.ts';

/** A listener on loopback with the budget guarding it; its sockets stay open until the test ends. */
async function listening(budget: SocketBudget, name: string, share: number) {
  const server = net.createServer((socket) => socket.on('error', () => {}));
  budget.guard(name, server, share);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as net.AddressInfo).port };
}

/** Connects and answers whether the connection stays open 150 ms after connecting (a refused one is closed). */
async function staysOpen(port: number, opened: net.Socket[]): Promise<boolean> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  socket.resume();
  opened.push(socket);
  const closed = new Promise<boolean>((resolve) => socket.once('close', () => resolve(false)));
  const held = new Promise<boolean>((resolve) => setTimeout(() => resolve(true), 150));
  return Promise.race([closed, held]);
}

describe('SocketBudget', () => {
  const opened: net.Socket[] = [];
  const servers: net.Server[] = [];
  const warnings: string[] = [];
  const log = pino({ level: 'warn' }, { write: (line: string) => warnings.push(JSON.parse(line).msg) });

  afterEach(async () => {
    for (const socket of opened.splice(0)) socket.destroy();
    await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
    warnings.length = 0;
  });

  it('stops a listener at its share, says so, and keeps the rest of the budget for the others', async () => {
    const budget = new SocketBudget(10, log);
    const ssh = await listening(budget, 'SSH gateway', 0.5);
    const http = await listening(budget, 'HTTP API', 1);
    servers.push(ssh.server, http.server);

    for (let n = 0; n < 5; n++) expect(await staysOpen(ssh.port, opened)).toBe(true);
    // The flooded port is full at its half of the budget…
    expect(await staysOpen(ssh.port, opened)).toBe(false);
    expect(warnings).toEqual([
      "SSH gateway: refusing new connections: it holds 5, its most (its share of the process's 10), so the other ports keep theirs",
    ]);
    // …while the API takes the other half, and then the whole budget is spent.
    for (let n = 0; n < 5; n++) expect(await staysOpen(http.port, opened)).toBe(true);
    expect(await staysOpen(http.port, opened)).toBe(false);
    expect(budget.connections).toBe(10);

    // A connection that closes gives its place back.
    opened[0]?.destroy();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await staysOpen(http.port, opened)).toBe(true);
  });

  it('refuses connections beyond the whole budget on a listener allowed all of it, and warns once', async () => {
    const budget = new SocketBudget(3, log);
    const only = await listening(budget, 'HTTP API', 1);
    servers.push(only.server);
    for (let n = 0; n < 3; n++) expect(await staysOpen(only.port, opened)).toBe(true);
    expect(await staysOpen(only.port, opened)).toBe(false);
    expect(await staysOpen(only.port, opened)).toBe(false);
    expect(budget.connections).toBe(3);
    expect(warnings).toHaveLength(1);
  });
});
