import type { Duplex } from 'node:stream';

/**
 * How much a person's client may send on a forwarding channel (`ssh -J`) before the gateway lets it send more.
 * ssh2 (1.17) grants 2 MiB, topped up once half is used, a constant of its own (`MAX_WINDOW` in lib/Channel.js):
 * through the gateway a transfer then waits on each top-up, and 500 MB through `ssh -J` moved at about half the
 * rate of OpenSSH's jump host (108–127 against 204–250 MB/s); with 8 MiB 158–179, 16 MiB 168–200, 32 MiB 199–230
 * MB/s against 229–251 (BENCHMARKS.md, SSH gateway benchmark). A channel whose reader stops holds at most this much
 * in the gateway, so a person gets it on `WIDE_WINDOWS_PER_USER` forwardings at once, and ssh2's own on the others.
 */
export const FORWARDING_WINDOW = 32 * 1024 * 1024;
/** Forwarding channels one person may hold open with `FORWARDING_WINDOW` (at most 64 MiB beyond ssh2's own). */
export const WIDE_WINDOWS_PER_USER = 2;

/** The parts of an ssh2 channel (1.17, lib/Channel.js) this relies on: its receive window and its protocol. */
interface ChannelInternals {
  incoming: { window: number };
  outgoing: { id: number; state: string };
  _client: { _protocol: { channelWindowAdjust(id: number, amount: number): void } };
}

function hasInternals(channel: object): channel is ChannelInternals {
  const c = channel as Partial<ChannelInternals>;
  return (
    typeof c.incoming?.window === 'number' &&
    typeof c.outgoing?.id === 'number' &&
    typeof c._client?._protocol?.channelWindowAdjust === 'function'
  );
}

/**
 * Keeps the client's window on `channel` at `size`: granted at once, then topped up whenever half is used, as
 * the channel's reader takes the data ('data' events: none while the reader is paused, so a stopped reader
 * stops the grants). Call it in the same tick as the reader is attached, before the data flows. Leaves ssh2's
 * own window alone if ssh2's internals are not what this expects (another version).
 */
export function widenReceiveWindow(channel: Duplex, size = FORWARDING_WINDOW): void {
  if (!hasInternals(channel)) return;
  const topUp = (): void => {
    const { incoming, outgoing, _client } = channel;
    if (outgoing.state !== 'open' || incoming.window > size / 2) return;
    const amount = size - incoming.window;
    incoming.window += amount;
    _client._protocol.channelWindowAdjust(outgoing.id, amount);
  };
  topUp();
  channel.on('data', topUp);
}
