export { Agent, type AgentOptions, serverEndpointOf } from './agent.ts';
export { Backoff, type BackoffOptions, backoffWindow, fullJitterDelay, sleep } from './backoff.ts';
export { AGENT_VERSION, type AgentCliIo, runAgentCli } from './cli.ts';
export {
  type AgentConfig,
  type AgentConfigFile,
  agentConfigFileSchema,
  ConfigError,
  DEFAULT_CONFIG_FILE,
  DEFAULT_DATA_DIR,
  type EnrollmentConfig,
  loadConfigFile,
  parseConfig,
} from './config.ts';
export { type Credentials, credentialsFile, readCredentials, writeCredentials } from './credentials.ts';
export {
  type DeviceAuthenticator,
  DeviceKeyAuthenticator,
  EnrollmentError,
  ensureEnrolled,
  KeyPairAuthenticator,
  signedAuthRequest,
} from './enroll.ts';
export { createLogger, type Logger, type LogLevel } from './log.ts';
export { StateCollector, type StateReport } from './state.ts';
export { MaskedSender, TunnelClient, type TunnelClientOptions, type TunnelStopReason } from './tunnel.ts';
export { renderEnvFile, shellQuote } from './variables.ts';
