import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import net from 'node:net';

/**
 * A real VNC server for tests, as a device would run one: Debian's Xvfb (an X display in memory) painted one known
 * colour with xsetroot, shared by Debian's x11vnc on a free port of 127.0.0.1, and its clipboard read and written
 * with xclip. Used by the server's VNC tests and the browser's (packages/web/test/e2e/vnc.spec.ts).
 */

/** The Debian package of each program the VNC tests run. */
const PROGRAMS = { Xvfb: 'xvfb', xsetroot: 'x11-xserver-utils', x11vnc: 'x11vnc', xclip: 'xclip' } as const;

/** Why the VNC tests cannot run here (the Debian packages to install), or undefined when they can. */
export function vncToolsMissing(): string | undefined {
  const missing = Object.entries(PROGRAMS).filter(
    ([program]) => spawnSync('sh', ['-c', `command -v ${program}`]).status !== 0,
  );
  if (!missing.length) return undefined;
  return `install the Debian packages ${missing.map(([, pkg]) => pkg).join(' ')} (for ${missing.map(([p]) => p).join(', ')})`;
}

export interface VncDisplay {
  /** The X display, e.g. `:3`. */
  display: string;
  /** The VNC server's port on 127.0.0.1. */
  port: number;
  /** The display's colour, `#rrggbb`. */
  color: string;
  /** Paints the whole display another colour. */
  paint(color: string): void;
  /** Copies `text` to the display's CLIPBOARD, as an application on the device would. */
  copy(text: string): void;
  /** The display's CLIPBOARD now ('' when nothing holds it). */
  clipboard(): string;
  stop(): Promise<void>;
}

/**
 * Starts Xvfb on a free display (`-displayfd`: the X server picks one no one holds), paints it `color`, and
 * x11vnc on a free port (asking for `password` when given). Resolves once x11vnc answers with its RFB banner.
 */
export async function startVncDisplay(
  options: { color?: string; password?: string; width?: number; height?: number } = {},
): Promise<VncDisplay> {
  const { color = '#1e90ff', width = 640, height = 480 } = options;
  const children: ChildProcess[] = [];
  const stop = async () => {
    await Promise.all(
      children.reverse().map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGTERM');
          }),
      ),
    );
  };
  try {
    // -noreset: an X server resets when its last client leaves, and xsetroot's colour would go with the reset.
    const xvfb = spawn(
      'Xvfb',
      ['-displayfd', '3', '-noreset', '-screen', '0', `${width}x${height}x24`, '-nolisten', 'tcp'],
      { stdio: ['ignore', 'ignore', 'pipe', 'pipe'] },
    );
    children.push(xvfb);
    let xvfbOutput = '';
    xvfb.stderr?.on('data', (chunk: Buffer) => (xvfbOutput += chunk));
    const number = await new Promise<string>((resolve, reject) => {
      let text = '';
      const fd = xvfb.stdio[3] as NodeJS.ReadableStream;
      fd.on('data', (chunk: Buffer) => {
        text += chunk;
        if (text.includes('\n')) resolve(text.trim());
      });
      xvfb.once('exit', (code) => reject(new Error(`Xvfb exited (${code}):\n${xvfbOutput}`)));
      setTimeout(() => reject(new Error(`Xvfb did not start in 10 s:\n${xvfbOutput}`)), 10_000).unref();
    });
    const display = `:${number}`;
    const paint = (to: string) => {
      const painted = spawnSync('xsetroot', ['-display', display, '-solid', to], { encoding: 'utf8' });
      if (painted.status !== 0) throw new Error(`xsetroot failed: ${painted.stderr}`);
    };
    paint(color);
    const port = await freePort();
    const x11vnc = spawn(
      'x11vnc',
      [
        ...['-display', display, '-rfbport', String(port), '-localhost', '-norc', '-forever', '-shared'],
        ...(options.password ? ['-passwd', options.password] : ['-nopw']),
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        // Without a window manager, x11vnc takes the display for a login screen and leaves the clipboard alone
        // for 45 s after a viewer connects; a device's desktop has one (then it waits 8 s). Either way, it sends
        // the display's clipboard to viewers only from 15 s after one connected.
        env: { ...process.env, X11VNC_AVOID_WINDOWS: 'never' },
      },
    );
    children.push(x11vnc);
    let x11vncOutput = '';
    x11vnc.stdout?.on('data', (chunk: Buffer) => (x11vncOutput += chunk));
    x11vnc.stderr?.on('data', (chunk: Buffer) => (x11vncOutput += chunk));
    const started = Date.now();
    while ((await rfbBanner(port)) === undefined) {
      if (x11vnc.exitCode !== null) throw new Error(`x11vnc exited (${x11vnc.exitCode}):\n${x11vncOutput}`);
      if (Date.now() - started > 15_000) throw new Error(`x11vnc did not answer in 15 s:\n${x11vncOutput}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    let copier: ChildProcess | undefined;
    const copy = (text: string) => {
      // xclip holds the selection (in the foreground with -quiet) until another client takes it.
      copier?.kill('SIGTERM');
      copier = spawn(
        'xclip',
        ['-quiet', '-display', display, '-selection', 'clipboard', '-target', 'STRING', '-in'],
        { stdio: ['pipe', 'ignore', 'ignore'] },
      );
      children.push(copier);
      copier.stdin?.end(Buffer.from(text, 'latin1'));
    };
    const clipboard = () =>
      (
        spawnSync('xclip', ['-display', display, '-selection', 'clipboard', '-target', 'STRING', '-out'], {
          timeout: 5000,
        }).stdout ?? Buffer.alloc(0)
      ).toString('latin1');
    return { display, port, color, paint, copy, clipboard, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** A port of 127.0.0.1 no one listens on now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** The first 12 bytes a VNC server at `port` sends (`RFB 003.008\n`), or undefined when none answers. */
function rfbBanner(port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let text = '';
    const done = (answer: string | undefined) => {
      socket.destroy();
      resolve(answer);
    };
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (text.length >= 12) done(text.slice(0, 12));
    });
    socket.on('error', () => done(undefined));
    socket.on('close', () => done(undefined));
    socket.setTimeout(2000, () => done(undefined));
  });
}
