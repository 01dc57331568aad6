/** People's SSH public keys: what the SSH gateway, OpenSSH mode and devices' authorized keys read. */
export { registerSshKeyRoutes } from './routes.ts';
export { markSshKeyUsed, sshKeyByFingerprint, sshKeyById, sshKeysAllowedOnDevice } from './service.ts';
