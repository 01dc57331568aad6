import type net from 'node:net';

/**
 * One OpenVPN server's management interface (OpenVPN's doc/management-notes.txt), as fleetgate speaks it: the
 * server is started with `--management <socket> unix --management-client --management-client-auth`, so it
 * connects to fleetgate's socket and asks, for every client, whether it may connect. No process per connection,
 * no script: each decision is a line written back.
 *
 * Notifications read (each a line starting with `>`):
 * - `>CLIENT:CONNECT,{CID},{KID}` and `>CLIENT:REAUTH,{CID},{KID}`, followed by `>CLIENT:ENV,name=value` lines and
 *   `>CLIENT:ENV,END`: a client asks in (`username`, `password`, `untrusted_ip`, `untrusted_port` among the
 *   variables). OpenVPN waits for `client-auth` or `client-deny` (up to its hand-window).
 * - `>CLIENT:ESTABLISHED,{CID}` + ENV: the client is in (`ifconfig_pool_remote_ip` is its VPN address).
 * - `>CLIENT:DISCONNECT,{CID}` + ENV: it left (`bytes_received`, `bytes_sent`).
 * - `>CLIENT:ADDRESS,{CID},{ADDR},{PRI}`: an address learned for it.
 * - `>INFO:…`, `>LOG:…`, `>STATE:…` and the rest: ignored.
 * Every command written is answered by one `SUCCESS: …` or `ERROR: …` line, in order.
 */

export interface ClientRequest {
  kind: 'connect' | 'reauth';
  cid: number;
  kid: number;
  env: Map<string, string>;
}

export interface ManagementEvents {
  /** A client asks in; answer with `allow` or `deny` (OpenVPN holds it until then). */
  request(request: ClientRequest): void;
  established(cid: number, env: Map<string, string>): void;
  disconnected(cid: number, env: Map<string, string>): void;
  /** The management connection ended: the OpenVPN process stopped or lost it. */
  closed(): void;
}

/** The longest line accepted from OpenVPN: far beyond any it writes; a longer one is a broken peer. */
const MAX_LINE = 64 * 1024;
/** ENV variables kept per client block: OpenVPN sends a few dozen. */
const MAX_ENV = 512;

interface Block {
  type: 'connect' | 'reauth' | 'established' | 'disconnect';
  cid: number;
  kid: number;
  env: Map<string, string>;
}

export class ManagementConnection {
  private buffer = '';
  private block: Block | undefined;
  private readonly answers: ((line: string) => void)[] = [];
  private ended = false;

  constructor(
    private readonly socket: net.Socket,
    private readonly events: ManagementEvents,
    private readonly onProtocolError: (message: string) => void,
  ) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.read(chunk));
    socket.on('error', () => {});
    socket.on('close', () => {
      this.ended = true;
      for (const answer of this.answers.splice(0)) answer('ERROR: the management connection closed');
      events.closed();
    });
  }

  get open(): boolean {
    return !this.ended;
  }

  /** Lets the client in. */
  allow(cid: number, kid: number): Promise<string> {
    return this.command(`client-auth-nt ${cid} ${kid}`);
  }

  /** Refuses the client; `reason` is logged by OpenVPN and sent to the client (no quotes or line breaks in it). */
  deny(cid: number, kid: number, reason: string): Promise<string> {
    const text = reason.replace(/["\\\r\n]/g, ' ');
    return this.command(`client-deny ${cid} ${kid} "${text}" "${text}"`);
  }

  /**
   * Disconnects a connected client at once, telling it to stop (`HALT`: a decommissioned device; its service
   * manager may start it again, to be refused) or to connect again (`RESTART`).
   */
  kill(cid: number, message: 'HALT' | 'RESTART'): Promise<string> {
    return this.command(`client-kill ${cid} ${message}`);
  }

  /** Writes a command and answers OpenVPN's one-line reply (`SUCCESS: …` or `ERROR: …`). */
  command(line: string): Promise<string> {
    if (this.ended) return Promise.resolve('ERROR: the management connection closed');
    return new Promise((resolve) => {
      this.answers.push(resolve);
      this.socket.write(`${line}\n`);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private read(chunk: string): void {
    this.buffer += chunk;
    let start = 0;
    for (let end = this.buffer.indexOf('\n', start); end >= 0; end = this.buffer.indexOf('\n', start)) {
      const line = this.buffer.slice(start, end).replace(/\r$/, '');
      start = end + 1;
      this.line(line);
      if (this.ended) return;
    }
    this.buffer = this.buffer.slice(start);
    if (this.buffer.length > MAX_LINE) this.fail(`a line longer than ${MAX_LINE} characters`);
  }

  private line(line: string): void {
    if (!line.startsWith('>')) {
      if (line.startsWith('SUCCESS:') || line.startsWith('ERROR:')) this.answers.shift()?.(line);
      return;
    }
    if (line.startsWith('>CLIENT:ENV,')) {
      const block = this.block;
      if (!block) {
        this.fail('a >CLIENT:ENV line outside a client block');
        return;
      }
      const pair = line.slice('>CLIENT:ENV,'.length);
      if (pair === 'END') {
        this.block = undefined;
        this.dispatch(block);
        return;
      }
      const eq = pair.indexOf('=');
      if (eq > 0 && block.env.size < MAX_ENV) block.env.set(pair.slice(0, eq), pair.slice(eq + 1));
      return;
    }
    const client = /^>CLIENT:(CONNECT|REAUTH|ESTABLISHED|DISCONNECT),(\d+)(?:,(\d+))?$/.exec(line);
    if (client) {
      const type = client[1]!.toLowerCase() as Block['type'];
      this.block = { type, cid: Number(client[2]), kid: Number(client[3] ?? 0), env: new Map() };
    }
  }

  private dispatch(block: Block): void {
    switch (block.type) {
      case 'connect':
      case 'reauth':
        this.events.request({ kind: block.type, cid: block.cid, kid: block.kid, env: block.env });
        return;
      case 'established':
        this.events.established(block.cid, block.env);
        return;
      case 'disconnect':
        this.events.disconnected(block.cid, block.env);
        return;
    }
  }

  private fail(message: string): void {
    this.onProtocolError(message);
    this.ended = true;
    this.socket.destroy();
  }
}
