import type { Socket } from 'node:net';

/**
 * Connections that have not signed in yet, counted from the moment they are accepted (before a byte arrives),
 * as sshd's `LoginGraceTime` and `MaxStartups`: each has `graceMs` to sign in or is closed; one source (an IPv4
 * address or IPv6 /64) holds at most `perSource` of them, and all sources `total`.
 *
 * When all `total` places are taken, a newcomer from a source holding fewer than the busiest source takes the
 * place of that source's oldest connection: a flood from a few addresses cannot keep a person from elsewhere
 * out, while a flood from many addresses degrades to first come, first served.
 */
export class WaitingConnections {
  /** Source → its waiting sockets, oldest first (a Map keeps insertion order), each with how it leaves. */
  private readonly bySource = new Map<string, Map<Socket, () => void>>();
  private count = 0;

  constructor(
    private readonly limits: { perSource: number; total: number; graceMs: number },
    /** Told when a connection is refused or pushed out, to log it. */
    private readonly onShed: (reason: 'source full' | 'all full' | 'pushed out', source: string) => void,
  ) {}

  get size(): number {
    return this.count;
  }

  /**
   * Takes a new connection in, or closes it. Answers the function to call once it has signed in (it then stops
   * counting and keeps its connection), or undefined when it was refused.
   */
  admit(socket: Socket, source: string): (() => void) | undefined {
    const mine = this.bySource.get(source);
    if ((mine?.size ?? 0) >= this.limits.perSource) return this.refuse(socket, 'source full', source);
    if (this.count >= this.limits.total && !this.pushOutFor(mine?.size ?? 0)) {
      return this.refuse(socket, 'all full', source);
    }
    const waiting = mine ?? new Map<Socket, () => void>();
    if (!mine) this.bySource.set(source, waiting);
    this.count += 1;
    const timer = setTimeout(() => socket.destroy(), this.limits.graceMs);
    timer.unref();
    let left = false;
    const leave = () => {
      if (left) return;
      left = true;
      clearTimeout(timer);
      waiting.delete(socket);
      this.count -= 1;
      if (waiting.size === 0 && this.bySource.get(source) === waiting) this.bySource.delete(source);
    };
    waiting.set(socket, leave);
    socket.once('close', leave);
    return leave;
  }

  private refuse(socket: Socket, reason: 'source full' | 'all full', source: string): undefined {
    socket.destroy();
    this.onShed(reason, source);
    return undefined;
  }

  /** Closes the oldest connection of the busiest source, if it holds more than `newcomerHolds`. */
  private pushOutFor(newcomerHolds: number): boolean {
    let busiest: [string, Map<Socket, () => void>] | undefined;
    for (const entry of this.bySource) if (!busiest || entry[1].size > busiest[1].size) busiest = entry;
    if (!busiest || busiest[1].size <= newcomerHolds) return false;
    const [source, sockets] = busiest;
    const [oldest, leave] = sockets.entries().next().value as [Socket, () => void];
    // Leaves the count at once: its 'close' comes later.
    leave();
    oldest.destroy();
    this.onShed('pushed out', source);
    return true;
  }
}
