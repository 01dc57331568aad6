import { randomBytes } from 'node:crypto';
import { Duplex } from 'node:stream';
import {
  type ExecClientMessage,
  ExecDecoder,
  type ExecRequest,
  encodeExecMessage,
  StreamError,
  StreamErrorCode,
} from '@fleetgate/protocol';
import type { MenderConnection, SessionHandler } from './connections.ts';
import {
  ControlType,
  MAX_BODY_TO_DEVICE,
  Proto,
  type ProtoMessage,
  ShellStatus,
  ShellType,
} from './protocol.ts';

/** How long the device has to answer `new`, in milliseconds. */
const SPAWN_TIMEOUT_MS = 15_000;
/**
 * The longest command fleetgate types into a device's shell, in bytes: a terminal's line discipline takes at most
 * 4,095 bytes in a line, and the wrapper around the command takes some.
 */
export const MAX_SHELL_COMMAND = 3_000;
/**
 * How long input waits for the shell's first output (its prompt) before it is sent anyway, in milliseconds: typed
 * into the terminal before the shell reads it, input is sometimes lost (seen under load on CI: a command or a
 * person's first line never ran, and the stream waited forever).
 */
const READY_FALLBACK_MS = 3_000;
/** Output held back while looking for the command's start marker (the prompt and the echoed line), in bytes. */
const MAX_PREAMBLE = 64 * 1024;

/** Bytes of the markers that frame a command's output: ASCII record separators, never typed by people. */
const RS = '\x1e';

/** `command` quoted for a POSIX shell. */
function shellQuoted(command: string): string {
  return `'${command.replaceAll("'", `'\\''`)}'`;
}

/**
 * A shell or a command on a mender-connect device (proto 1), as the exec stream the stream router relays: it
 * reads the exec sub-protocol of @fleetgate/protocol from the person's side (the SSH gateway, the web terminal) and
 * speaks mender-connect's shell messages to the device — `new` with the terminal size and the person's `user_id`,
 * `shell` data both ways, `resize`, `stop` — and answers the device's health-check pings.
 *
 * mender-connect only offers an interactive shell in a terminal. A command (`ssh user+device@gw uname -a`) is
 * typed into that shell between two markers that only the command's own output can contain (the echoed line
 * spells them as `\036`): what comes before the start marker (prompt, echo) is dropped, the end marker carries
 * the exit code, and the shell then exits. The command's stdout and stderr arrive merged, through a terminal.
 */
export class ShellStream extends Duplex implements SessionHandler {
  private readonly sid: string;
  private readonly decoder = new ExecDecoder({ from: 'client' });
  private spawned: { resolve(): void; reject(error: Error): void } | undefined;
  private stopped = false;
  private lastInput = '\n';
  /** For a command: its markers, and where its output stands. */
  private readonly command:
    | { begin: string; endPrefix: string; state: 'before' | 'running' | 'done'; held: string }
    | undefined;
  private exitCode: number | undefined;
  /** Input waiting for the shell to show it reads (`ready`); undefined once it does. */
  private waiting: Buffer[] | undefined = [];
  private readyTimer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly connection: MenderConnection,
    private readonly userId: string,
    private readonly request: ExecRequest,
  ) {
    super({ allowHalfOpen: true });
    this.sid = connection.newSession(this);
    if (request.command !== undefined) {
      const nonce = randomBytes(6).toString('hex');
      this.command = {
        begin: `${RS}FGB:${nonce}${RS}`,
        endPrefix: `${RS}FGE:${nonce}:`,
        state: 'before',
        held: '',
      };
    }
  }

  /** Starts a shell (and the command, if any) on the device; rejects with a `StreamError` when it refuses. */
  static async open(
    connection: MenderConnection,
    userId: string,
    request: ExecRequest,
  ): Promise<ShellStream> {
    if (request.command !== undefined && Buffer.byteLength(request.command) > MAX_SHELL_COMMAND)
      throw new StreamError(
        StreamErrorCode.refused,
        `a command for a mender-connect device is at most ${MAX_SHELL_COMMAND} bytes (it is typed into a terminal)`,
      );
    const stream = new ShellStream(connection, userId, request);
    try {
      await stream.spawn();
    } catch (err) {
      stream.destroy();
      throw err;
    }
    stream.readyTimer = setTimeout(() => stream.ready(), READY_FALLBACK_MS).unref();
    if (request.command !== undefined) stream.typeCommand(request.command, request.pty !== undefined);
    return stream;
  }

  private spawn(): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.connection.closed) {
        reject(new StreamError(StreamErrorCode.connectionClosed, 'the device disconnected'));
        return;
      }
      const timer = setTimeout(
        () => reject(new StreamError(StreamErrorCode.timeout, 'the device did not start a shell in time')),
        SPAWN_TIMEOUT_MS,
      );
      this.spawned = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      const { cols, rows } = this.request.pty ?? { cols: 80, rows: 24 };
      this.connection.send({
        proto: Proto.shell,
        typ: ShellType.new,
        sid: this.sid,
        props: { user_id: this.userId, terminal_width: cols, terminal_height: rows },
      });
    });
  }

  /**
   * Types the command into the shell: echo off (and, without a terminal on the person's side, no CR added to
   * the output), the start marker, the command, the end marker with its exit code, then `exit`.
   */
  private typeCommand(command: string, pty: boolean): void {
    const marks = this.command!;
    const beginNonce = marks.begin.slice(5, -1);
    const line = [
      `stty -echo${pty ? '' : ' -onlcr'} 2>/dev/null`,
      `printf '\\036FGB:%s\\036' ${beginNonce}`,
      ...(pty ? ['stty echo 2>/dev/null'] : []),
      // In a subshell: an `exit` in the command ends the command, not the shell that prints its exit code.
      `(eval ${shellQuoted(command)})`,
      `printf '\\036FGE:%s:%d\\036' ${beginNonce} $?`,
      'exit',
    ].join('; ');
    this.sendInput(Buffer.from(`${line}\n`));
  }

  /** The shell is reading (it printed something, or the wait is over): the input held until now goes to it. */
  private ready(): void {
    clearTimeout(this.readyTimer);
    const waiting = this.waiting;
    this.waiting = undefined;
    for (const data of waiting ?? []) if (!this.stopped) this.sendInput(data);
  }

  private sendInput(data: Buffer): void {
    if (this.waiting) {
      this.waiting.push(data);
      if (data.length) this.lastInput = String.fromCharCode(data[data.length - 1]!);
      return;
    }
    for (let offset = 0; offset < data.length; offset += MAX_BODY_TO_DEVICE) {
      this.connection.send({
        proto: Proto.shell,
        typ: ShellType.shell,
        sid: this.sid,
        props: { user_id: this.userId },
        body: data.subarray(offset, offset + MAX_BODY_TO_DEVICE),
      });
    }
    if (data.length) this.lastInput = String.fromCharCode(data[data.length - 1]!);
  }

  receive(message: ProtoMessage): void {
    const { proto, typ, props } = message.hdr;
    if (proto === Proto.control) {
      if (typ === ControlType.close) this.deviceEnded();
      return;
    }
    if (proto !== Proto.shell) return;
    switch (typ) {
      case ShellType.new:
        if (props.status === ShellStatus.error) {
          const reason = message.body.toString('utf8').slice(0, 256) || 'the device refused to start a shell';
          this.spawned?.reject(new StreamError(StreamErrorCode.refused, reason));
        } else this.spawned?.resolve();
        this.spawned = undefined;
        return;
      case ShellType.shell:
        if (props.status === ShellStatus.error) return;
        if (this.waiting) this.ready();
        this.output(message.body);
        return;
      case ShellType.ping:
        this.connection.send({
          proto: Proto.shell,
          typ: ShellType.pong,
          sid: this.sid,
          props: { user_id: this.userId },
        });
        return;
      case ShellType.stop:
        this.deviceEnded();
        return;
      default:
        return;
    }
  }

  /** The device's terminal output: to the person, or (for a command) what lies between the markers. */
  private output(data: Buffer): void {
    const marks = this.command;
    if (!marks) {
      this.deliver(data);
      return;
    }
    if (marks.state === 'done') return;
    // latin1 maps each byte to one character and back: markers are found without breaking UTF-8 output.
    let text = marks.held + data.toString('latin1');
    marks.held = '';
    if (marks.state === 'before') {
      const at = text.indexOf(marks.begin);
      if (at < 0) {
        // Keep only a tail that may hold the start of the marker; the prompt and echo are dropped.
        marks.held = text.slice(-Math.min(text.length, marks.begin.length, MAX_PREAMBLE));
        return;
      }
      marks.state = 'running';
      text = text.slice(at + marks.begin.length);
    }
    const end = text.indexOf(marks.endPrefix);
    if (end >= 0) {
      const close = text.indexOf(RS, end + marks.endPrefix.length);
      if (close >= 0) {
        this.deliver(Buffer.from(text.slice(0, end), 'latin1'));
        const code = Number(text.slice(end + marks.endPrefix.length, close));
        this.exitCode = Number.isInteger(code) && code >= 0 && code <= 255 ? code : 255;
        marks.state = 'done';
        return;
      }
    }
    // Hold back from the last separator on: it may begin the end marker, whose rest is still on its way.
    const lastRs = text.lastIndexOf(RS);
    const keep = lastRs >= 0 && text.length - lastRs <= marks.endPrefix.length + 4 ? lastRs : text.length;
    marks.held = text.slice(keep);
    this.deliver(Buffer.from(text.slice(0, keep), 'latin1'));
  }

  private deliver(data: Buffer): void {
    if (!data.length || this.readableEnded) return;
    if (!this.push(encodeExecMessage({ type: 'stdout', data }))) this.connection.hold(this.sid);
  }

  /** The shell ended on the device: the exit code (a command's), then the end of the stream. */
  private deviceEnded(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.readyTimer);
    this.spawned?.reject(new StreamError(StreamErrorCode.refused, 'the device ended the shell'));
    this.spawned = undefined;
    if (this.command?.held && this.command.state === 'running')
      this.deliver(Buffer.from(this.command.held, 'latin1'));
    // The device keeps a stopped shell's slot (one per user) until told: `stop` frees it.
    this.sendStop();
    if (!this.readableEnded) {
      if (this.exitCode !== undefined)
        this.push(encodeExecMessage({ type: 'exit', status: { code: this.exitCode } }));
      this.push(null);
    }
  }

  private sendStop(): void {
    this.connection.send({
      proto: Proto.shell,
      typ: ShellType.stop,
      sid: this.sid,
      props: { user_id: this.userId },
    });
    this.connection.endSession(this.sid);
  }

  connectionClosed(reason: string): void {
    this.stopped = true;
    clearTimeout(this.readyTimer);
    this.spawned?.reject(new StreamError(StreamErrorCode.connectionClosed, reason));
    this.spawned = undefined;
    this.destroy(new StreamError(StreamErrorCode.connectionClosed, reason));
  }

  override _read(): void {
    this.connection.release(this.sid);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    let messages: ExecClientMessage[];
    try {
      messages = this.decoder.push(chunk) as ExecClientMessage[];
    } catch (error) {
      callback(error as Error);
      return;
    }
    for (const message of messages) this.input(message);
    callback();
  }

  /** One message of the person's side, as the device's shell understands it. */
  private input(message: ExecClientMessage): void {
    if (this.stopped) return;
    switch (message.type) {
      case 'stdin':
        this.sendInput(Buffer.from(message.data));
        return;
      case 'eofStdin':
        // End of input for a command reading the terminal: ^D at the start of a line (twice after a partial one).
        if (this.command) this.sendInput(Buffer.from(this.lastInput === '\n' ? '\x04' : '\x04\x04'));
        return;
      case 'resize':
        this.connection.send({
          proto: Proto.shell,
          typ: ShellType.resize,
          sid: this.sid,
          props: { user_id: this.userId, terminal_width: message.cols, terminal_height: message.rows },
        });
        return;
      case 'signal': {
        const name = message.name.replace(/^SIG/, '');
        if (name === 'INT') this.sendInput(Buffer.from('\x03'));
        else if (name === 'QUIT') this.sendInput(Buffer.from('\x1c'));
        else if (name === 'TERM' || name === 'KILL' || name === 'HUP') {
          this.stopped = true;
          this.sendStop();
          this.push(null);
        }
        return;
      }
    }
  }

  override _final(callback: (error?: Error | null) => void): void {
    // The person's side ended (an SSH channel's EOF after its exit): the shell goes with it.
    if (!this.stopped) {
      this.stopped = true;
      this.sendStop();
      if (!this.readableEnded) this.push(null);
    }
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    clearTimeout(this.readyTimer);
    // An administrator ended the session, or the person went away: the shell on the device stops too.
    if (!this.stopped) {
      this.stopped = true;
      if (!this.connection.closed) this.sendStop();
    }
    this.connection.endSession(this.sid);
    callback(error);
  }
}
