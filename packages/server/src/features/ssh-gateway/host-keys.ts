import fs from 'node:fs';
import path from 'node:path';
import ssh2 from 'ssh2';

/** The gateway's host keys, generated on first start into `<dataDir>/ssh/` (mode 0600) and reused after. */
export interface HostKeys {
  /** Private keys in OpenSSH format, Ed25519 first (offered first to clients). */
  privateKeys: string[];
  /** Public key lines, for `known_hosts` and the banner. */
  publicKeys: string[];
}

const kinds = [
  { file: 'ssh_host_ed25519_key', type: 'ed25519' as const, options: {} },
  { file: 'ssh_host_rsa_key', type: 'rsa' as const, options: { bits: 3072 } },
];

export function hostKeysDir(dataDir: string): string {
  return path.join(dataDir, 'ssh');
}

/** Loads the host keys, generating any that is missing. */
export function loadHostKeys(dataDir: string): HostKeys {
  const dir = hostKeysDir(dataDir);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const privateKeys: string[] = [];
  const publicKeys: string[] = [];
  for (const kind of kinds) {
    const file = path.join(dir, kind.file);
    if (!fs.existsSync(file)) {
      const pair = generateUsablePair(kind.type, kind.options);
      // Written under a temporary name and renamed: two servers starting on one data dir never read half a key.
      const temporary = `${file}.${process.pid}.tmp`;
      fs.writeFileSync(temporary, pair.private, { mode: 0o600 });
      fs.writeFileSync(`${file}.pub`, `${pair.public}\n`, { mode: 0o644 });
      fs.renameSync(temporary, file);
    }
    const text = fs.readFileSync(file, 'utf8');
    const parsed = ssh2.utils.parseKey(text);
    const key = Array.isArray(parsed) ? parsed[0] : parsed;
    if (!key || key instanceof Error) {
      throw new Error(`${file}: not a usable SSH host key (${key instanceof Error ? key.message : 'empty'})`);
    }
    privateKeys.push(text);
    publicKeys.push(`${key.type} ${key.getPublicSSH().toString('base64')}`);
  }
  return { privateKeys, publicKeys };
}

/**
 * A new key pair that ssh2 itself can read back. ssh2's generator drops a leading zero byte of an Ed25519 public
 * key, so about one key in 256 comes out malformed ("Malformed OpenSSH private key"): such a key is made again.
 */
export function generateUsablePair(type: 'ed25519' | 'rsa', options: { bits?: number }) {
  for (let attempt = 1; ; attempt++) {
    const pair = ssh2.utils.generateKeyPairSync(type, { ...options, comment: 'fleetgate' });
    const parsed = ssh2.utils.parseKey(pair.private);
    if (!(parsed instanceof Error) || attempt >= 16) return pair;
  }
}
