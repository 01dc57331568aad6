/**
 * The device's credentials on disk: `<dataDir>/credentials.json`, mode 0600 in a 0700 directory.
 *
 * Written atomically (temporary file, fsync, rename): a power cut while enrolling leaves either the old
 * file or the new one, never half of one — a device that lost its key is a truck roll.
 */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

const credentialsSchema = z.discriminatedUnion('type', [
  z.strictObject({
    /** uuid + device key, registered with a provisioning key (or imported). */
    type: z.literal('device-key'),
    uuid: z.string().regex(/^[0-9a-f]{32}$/),
    deviceKey: z.string().min(16).max(512),
    /** False between generating the pair and the server's 201: a restart then registers again. */
    registered: z.boolean(),
  }),
  z.strictObject({
    /** A key pair whose auth set an admin accepted (or preauthorized); the JWT is never stored. */
    type: z.literal('key-pair'),
    privateKeyFile: z.string().min(1),
    identity: z.record(z.string(), z.string()),
    tenantToken: z.string().optional(),
  }),
]);
export type Credentials = z.infer<typeof credentialsSchema>;

/** The credentials file inside a data dir. */
export function credentialsFile(dataDir: string): string {
  return path.join(dataDir, 'credentials.json');
}

/** Creates the data dir (0700) if needed and tightens its mode if it is looser. */
export function ensureDataDir(dataDir: string): void {
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const mode = fs.statSync(dataDir).mode & 0o777;
  if (mode !== 0o700) fs.chmodSync(dataDir, 0o700);
}

/** The stored credentials, or undefined when the device has none yet. Throws on an unreadable file. */
export function readCredentials(dataDir: string): Credentials | undefined {
  const file = credentialsFile(dataDir);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const parsed = credentialsSchema.safeParse(JSON.parse(text));
  if (!parsed.success) {
    throw new Error(`${file} is not a credentials file: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  }
  return parsed.data;
}

/** Stores credentials atomically with mode 0600. */
export function writeCredentials(dataDir: string, credentials: Credentials): void {
  ensureDataDir(dataDir);
  writeFileAtomic(credentialsFile(dataDir), `${JSON.stringify(credentials, null, 2)}\n`);
}

/**
 * Writes `content` to `file` through a temporary file in the same directory (so the rename is atomic on
 * one file system), with mode 0600 from the start: the secret is never readable by others, not even
 * between create and chmod.
 */
export function writeFileAtomic(file: string, content: string | Uint8Array): void {
  const temporary = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  const fd = fs.openSync(temporary, 'w', 0o600);
  try {
    fs.writeSync(fd, typeof content === 'string' ? Buffer.from(content) : content);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  // An existing temporary file from a crash kept its old mode: set it again before it becomes visible.
  fs.chmodSync(temporary, 0o600);
  fs.renameSync(temporary, file);
}
