/**
 * The part of `ssh2` (1.17) the gateway uses, typed here because the package ships no types and
 * `@types/ssh2` is not installed. Server side only. At run time: `import ssh2 from 'ssh2'` (named ESM imports
 * fail, DESIGN section 11).
 */
declare module 'ssh2' {
  import type { EventEmitter } from 'node:events';
  import type { Server as NetServer, Socket } from 'node:net';
  import type { Duplex, Writable } from 'node:stream';

  export interface ParsedKey {
    type: string;
    comment: string;
    getPublicSSH(): Buffer;
    verify(data: Buffer, signature: Buffer, algo?: string): boolean | Error;
  }

  export interface AuthContextBase {
    username: string;
    service: string;
    accept(): void;
    reject(methodsLeft?: string[], isPartial?: boolean): void;
  }
  export interface PublicKeyAuthContext extends AuthContextBase {
    method: 'publickey';
    key: { algo: string; data: Buffer };
    hashAlgo: string | undefined;
    signature: Buffer | undefined;
    blob: Buffer | undefined;
  }
  export interface PasswordAuthContext extends AuthContextBase {
    method: 'password';
    password: string;
  }
  export interface OtherAuthContext extends AuthContextBase {
    method: 'none' | 'hostbased' | 'keyboard-interactive';
  }
  export type AuthContext = PublicKeyAuthContext | PasswordAuthContext | OtherAuthContext;

  /** A session or forwarding channel, server side. */
  export interface ServerChannel extends Duplex {
    stderr: Writable;
    exit(status: number): void;
    exit(signal: string, coreDumped?: boolean, message?: string): void;
    close(): void;
  }

  export type Accept<T = void> = () => T;
  export type Reject = () => void;

  export interface PtyInfo {
    term: string;
    cols: number;
    rows: number;
    width: number;
    height: number;
  }

  export interface Session extends EventEmitter {
    on(
      event: 'pty',
      listener: (accept: Accept | undefined, reject: Reject | undefined, info: PtyInfo) => void,
    ): this;
    on(
      event: 'window-change',
      listener: (accept: Accept | undefined, reject: Reject | undefined, info: PtyInfo) => void,
    ): this;
    on(
      event: 'env',
      listener: (
        accept: Accept | undefined,
        reject: Reject | undefined,
        info: { key: string; val: string },
      ) => void,
    ): this;
    on(
      event: 'signal',
      listener: (accept: Accept | undefined, reject: Reject | undefined, info: { name: string }) => void,
    ): this;
    on(event: 'shell', listener: (accept: Accept<ServerChannel>, reject: Reject) => void): this;
    on(
      event: 'exec',
      listener: (accept: Accept<ServerChannel>, reject: Reject, info: { command: string }) => void,
    ): this;
    on(
      event: 'subsystem',
      listener: (accept: Accept<ServerChannel>, reject: Reject, info: { name: string }) => void,
    ): this;
    on(event: 'close', listener: () => void): this;
  }

  export interface TcpipInfo {
    destIP: string;
    destPort: number;
    srcIP: string;
    srcPort: number;
  }

  export interface Connection extends EventEmitter {
    on(event: 'authentication', listener: (context: AuthContext) => void): this;
    on(event: 'ready', listener: () => void): this;
    on(event: 'session', listener: (accept: Accept<Session>, reject: Reject) => void): this;
    on(
      event: 'tcpip',
      listener: (accept: Accept<ServerChannel>, reject: Reject, info: TcpipInfo) => void,
    ): this;
    on(
      event: 'request',
      listener: (accept: (() => void) | undefined, reject: (() => void) | undefined, name: string) => void,
    ): this;
    on(event: 'error', listener: (error: Error) => void): this;
    on(event: 'close' | 'end', listener: () => void): this;
    end(): this;
  }

  export interface ServerConfig {
    hostKeys: (string | Buffer)[];
    ident?: string;
    banner?: string;
    greeting?: string;
    keepaliveInterval?: number;
    keepaliveCountMax?: number;
    highWaterMark?: number;
  }

  export interface ClientInfo {
    ip: string;
    family: string;
    port: number;
  }

  export class Server extends EventEmitter {
    constructor(config: ServerConfig, listener?: (client: Connection, info: ClientInfo) => void);
    listen(port: number, host: string, callback?: () => void): this;
    close(callback?: (error?: Error) => void): this;
    address(): ReturnType<NetServer['address']>;
    /** Serves a socket accepted elsewhere (the gateway's own listener). */
    injectSocket(socket: Socket): void;
    /** The underlying net.Server. */
    _srv: NetServer;
  }

  /** The client side, for tests that drive a session (window changes) directly. */
  export interface ClientChannel extends Duplex {
    stderr: Duplex;
    setWindow(rows: number, cols: number, height: number, width: number): void;
    /** Closes the channel (SSH_MSG_CHANNEL_CLOSE). */
    close(): void;
  }
  export class Client extends EventEmitter {
    connect(config: {
      host: string;
      port: number;
      username: string;
      privateKey?: string | Buffer;
      password?: string;
      readyTimeout?: number;
      /** An already connected socket (a test's chosen source address). */
      sock?: Duplex;
      /** Picks each authentication method; a handler that never calls back never signs in. */
      authHandler?: (
        methodsLeft: string[] | null,
        partialSuccess: boolean | null,
        next: (method: unknown) => void,
      ) => void;
    }): this;
    forwardOut(
      srcIP: string,
      srcPort: number,
      dstIP: string,
      dstPort: number,
      callback: (error: (Error & { reason?: number }) | undefined, channel: ClientChannel) => void,
    ): this;
    shell(
      window: { term?: string; cols?: number; rows?: number },
      callback: (error: Error | undefined, channel: ClientChannel) => void,
    ): this;
    exec(command: string, callback: (error: Error | undefined, channel: ClientChannel) => void): this;
    end(): this;
  }

  const ssh2: {
    Client: typeof Client;
    Server: typeof Server;
    utils: {
      parseKey(data: string | Buffer): ParsedKey | ParsedKey[] | Error;
      generateKeyPairSync(
        type: 'ed25519' | 'rsa' | 'ecdsa',
        options?: { bits?: number; comment?: string },
      ): { private: string; public: string };
    };
  };
  export default ssh2;
}
