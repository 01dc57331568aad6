import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type client from 'prom-client';
import { Gauge } from 'prom-client';
import { registerApiKeyRoutes } from './features/api-keys/routes.ts';
import { registerAuditRoutes } from './features/audit/routes.ts';
import { createAuthService, registerAuthRoutes } from './features/auth/index.ts';
import { createAuthSetActivity } from './features/auth-sets/activity.ts';
import { createPendingAuthSetLimiter } from './features/auth-sets/auth-request.ts';
import { registerAuthSetRoutes } from './features/auth-sets/routes.ts';
import { scheduleBackups } from './features/backup/schedule.ts';
import { createCluster, registerCluster } from './features/cluster/index.ts';
import { registerConnectProxy } from './features/connect-proxy/index.ts';
import { registerDashboardRoutes } from './features/dashboard/index.ts';
import { createDeviceAuthState } from './features/device-auth/authenticate.ts';
import { createDeviceKeyUsage } from './features/device-auth/last-used.ts';
import { registerDeviceKeyRoutes } from './features/device-keys/routes.ts';
import { registerDeviceTypeRoutes } from './features/device-types/routes.ts';
import { registerDeviceWeb } from './features/device-web/index.ts';
import { registerDecommissionRoutes, registerDeviceRoutes } from './features/devices/index.ts';
import { registerDiagnostics } from './features/diagnostics/index.ts';
import { registerFileTransfer } from './features/file-transfer/index.ts';
import { registerFleetRoutes } from './features/fleets/index.ts';
import { registerLiveEvents } from './features/live/index.ts';
import { registerMemberRoutes } from './features/members/routes.ts';
import { registerMenderRoutes } from './features/mender/routes.ts';
import {
  createMenderConnectHub,
  menderConnectLinks,
  registerMenderConnect,
} from './features/mender-connect/index.ts';
import { registerOpenSsh } from './features/openssh/index.ts';
import { createVpnBackend, registerOpenVpn } from './features/openvpn/index.ts';
import { registerOrgRoutes } from './features/orgs/index.ts';
import { registerOsConfig } from './features/os-config/index.ts';
import { registerPresenceRoutes } from './features/presence/routes.ts';
import { registerProvisioningKeyRoutes } from './features/provisioning-keys/routes.ts';
import { registerRecoveryRoutes } from './features/recovery/routes.ts';
import {
  createStreamRouter,
  currentDeviceReach,
  registerRemoteAccess,
  tunnelLinks,
} from './features/remote-access/index.ts';
import { endSessionsOfInstances, registerSessions } from './features/sessions/index.ts';
import { registerSshGateway } from './features/ssh-gateway/index.ts';
import { registerSshKeyRoutes } from './features/ssh-keys/index.ts';
import { createTunnelHub, registerTunnel } from './features/tunnel/index.ts';
import { registerUserRoutes } from './features/users/routes.ts';
import {
  openSecretVariableKeys,
  registerVariables,
  sealPlainSecretVariables,
} from './features/variables/index.ts';
import { registerVnc } from './features/vnc/index.ts';
import { registerWebTerminal } from './features/web-terminal/index.ts';
import { registerWebUi } from './features/web-ui/index.ts';
import type { Config } from './infra/config/index.ts';
import { type DatabaseHandle, databaseReady } from './infra/db/index.ts';
import { openDeviceTokens } from './infra/device-tokens/index.ts';
import { EventBus } from './infra/events/index.ts';
import { createHttpApp, sendError, type TypedApp } from './infra/http/index.ts';
import type { Logger } from './infra/logging/index.ts';
import { createSocketBudget } from './infra/net/index.ts';
import type { ServiceDeps } from './infra/service/index.ts';
import type { ServedCertificates } from './infra/tls/index.ts';

export interface AppOptions {
  config: Config;
  database: DatabaseHandle;
  log: Logger;
  /** Serve HTTPS with this PEM certificate (chain) and key; unset = plain HTTP. */
  tls?: { cert: string | Buffer; key: string | Buffer } | undefined;
  /** The served certificate and its CA, for their expiry in `/metrics` and `/readyz`; with `tls`. */
  certificates?: ServedCertificates | undefined;
  /**
   * `/readyz` answers 503 `starting` until `markStarted()`: `startServer` listens first and creates the first owner
   * last, so a script that waits for readiness and then signs in must not find the server ready before its owner.
   */
  starting?: boolean;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** What this app's services run with (for work done outside a request: first-run setup, tests). */
    deps: ServiceDeps;
    /** The start is complete (first owner made): `/readyz` may say ready. */
    markStarted(): void;
  }
}

/** Builds the HTTP application: infrastructure first, then every feature in a fixed, readable order. */
export async function buildApp({
  config,
  database,
  log,
  tls,
  certificates,
  starting = false,
}: AppOptions): Promise<TypedApp> {
  const deviceTokens = await openDeviceTokens({ dataDir: config.dataDir, ttlSeconds: config.deviceTokenTtl });
  // Before anything reads or writes variables: a key missing for sealed values stops the start here.
  const secrets = await openSecretVariableKeys(database.db, config);
  const sealed = await sealPlainSecretVariables(database.db, secrets, database.dialect);
  if (sealed) log.info({ sealed }, 'sealed the secret variables stored in plain text');
  const events = new EventBus((err, name) => log.error({ err, event: name }, 'an event listener failed'));
  // Everything per app lives here, made once: two apps in one process (tests) share none of it.
  const deps: ServiceDeps = {
    db: database.db,
    instanceId: randomUUID(),
    config,
    log,
    deviceTokens,
    secrets,
    events,
    sockets: createSocketBudget(config.maxConnections, log),
    authSetActivity: createAuthSetActivity(database.db, log),
    deviceKeyUsage: createDeviceKeyUsage(database.db, log),
    deviceAuth: createDeviceAuthState(events),
    pendingAuthSetsPerSource: createPendingAuthSetLimiter(),
    liveSessions: new Map(),
  };
  const auth = createAuthService(deps);
  const tunnels = createTunnelHub(deps);
  // Devices' OpenVPN connections (FLEETGATE_VPN=on): another kind of link, after the agent's tunnel.
  const vpn = config.vpn ? createVpnBackend(deps, tunnels) : undefined;
  // Stock Mender devices' mender-connect links: another kind of link, after the agent's tunnel and OpenVPN.
  const menderConnect = createMenderConnectHub(deps, tunnels.presence);
  const localLinks = [
    ...(vpn ? [tunnelLinks(tunnels), vpn.links()] : [tunnelLinks(tunnels)]),
    menderConnectLinks(menderConnect),
  ];
  // Other instances on the same database, and the devices they hold (FLEETGATE_INTERNAL_PORT): reached through them.
  const cluster = createCluster(deps, {
    dialect: database.dialect,
    localLinks,
    closeHeldBy: async (instanceIds) => {
      await tunnels.presence.closeLeftOpen(instanceIds);
      await endSessionsOfInstances(deps.db, instanceIds, Date.now());
    },
    dropLinks: () => tunnels.dropDeviceTunnels(),
  });
  const streams = createStreamRouter(deps, cluster.links ? [...localLinks, cluster.links] : localLinks);
  // Backups the server makes by itself (FLEETGATE_BACKUP_INTERVAL): off unless set.
  const backups =
    config.backupInterval === undefined
      ? undefined
      : scheduleBackups({
          target: {
            dataDir: config.dataDir,
            databaseUrl: config.databaseUrl,
            dbSchema: config.dbSchema,
            backupDir: config.backupDir ?? path.join(config.dataDir, 'backups'),
          },
          dir: config.backupDir ?? path.join(config.dataDir, 'backups'),
          intervalMs: config.backupInterval,
          keep: config.backupKeep,
          log,
        });
  const app = await createHttpApp({
    log,
    bodyLimit: config.bodyLimit,
    authenticate: (header, request) => auth.authenticate(header, request.ip),
    collectMetrics: (registry) => {
      registerDatabaseMetrics(registry, database);
      if (certificates) registerCertificateMetrics(registry, certificates);
      tunnels.registerMetrics(registry);
      menderConnect.registerMetrics(registry);
      streams.metrics.register(registry);
      backups?.registerMetrics(registry);
      vpn?.registerMetrics(registry);
    },
    ...(tls ? { https: tls } : {}),
  });
  app.decorate('deps', deps);
  // The API and the devices' tunnels may use the whole connection budget; the SSH gateway and the proxy, a quarter
  // each, so that a flood on those ports leaves the API at least half.
  deps.sockets.guard('HTTP API', app.server, 1);
  // Counts and times still waiting to be written go to the database before it closes.
  app.addHook('onClose', async () => {
    await Promise.all([deps.authSetActivity.flush(), deps.deviceKeyUsage.flush(), backups?.stop()]);
  });

  // Ready or not is the database's answer; the certificates' days left are details for whoever watches (an
  // expiring certificate still serves, and a restart would not help).
  let started = !starting;
  app.decorate('markStarted', () => {
    started = true;
  });
  app.get('/readyz', { config: { public: true }, schema: { hide: true } }, async (_request, reply) =>
    !started
      ? sendError(reply, 'unavailable', 'the server is starting')
      : (await databaseReady(database.db))
        ? // A failed scheduled backup shows here (and in /metrics) without taking the server out of service.
          {
            status: 'ready',
            instance: deps.instanceId,
            ...(certificates ? { tls: certificateDetails(certificates) } : {}),
            ...(backups ? { backups: backups.status() } : {}),
            ...(vpn ? { vpn: { port: vpn.port, instances: vpn.status() } } : {}),
          }
        : sendError(reply, 'unavailable', 'the database does not answer'),
  );

  registerAuthRoutes(app, deps, auth);
  registerUserRoutes(app, deps);
  registerOrgRoutes(app, deps);
  registerMemberRoutes(app, deps);
  registerApiKeyRoutes(app, deps);
  registerSshKeyRoutes(app, deps);
  registerFleetRoutes(app, deps);
  registerDeviceTypeRoutes(app, deps);
  registerDeviceRoutes(app, deps);
  registerProvisioningKeyRoutes(app, deps);
  registerDeviceKeyRoutes(app, deps);
  registerRecoveryRoutes(app, deps);
  registerDecommissionRoutes(app, deps);
  registerAuthSetRoutes(app, deps);
  registerMenderRoutes(app, deps, auth);
  await registerOsConfig(app, deps, () => vpn?.port || config.vpnPort);
  registerVariables(app, deps, tunnels);
  registerPresenceRoutes(app, deps);
  registerDashboardRoutes(app, deps);
  // People reaching devices, all through one stream router: port allow-lists and port streams (`fleetgate
  // tunnel`, an upgrade endpoint) here; the CONNECT proxy, the SSH gateway and OpenSSH mode below.
  registerRemoteAccess(app, deps, streams, auth, () => tunnels.stopping);
  registerSessions(app, deps, (deviceId) => currentDeviceReach(deps.db, deviceId));
  registerAuditRoutes(app, deps);
  registerLiveEvents(app, deps);
  // This instance among the others on the database: before the tunnel, so that what dead instances held is
  // closed before devices connect.
  registerCluster(app, cluster);
  // Devices' tunnels (an upgrade endpoint).
  registerTunnel(app, tunnels);
  // The OpenVPN backend's processes and public port (FLEETGATE_VPN=on): started after the tunnel hub.
  registerOpenVpn(app, vpn);
  // mender-connect devices' links (an upgrade endpoint), after the tunnel hub whose presence recorder they share.
  registerMenderConnect(app, deps, menderConnect, streams, auth, () => tunnels.stopping);
  // The HTTP CONNECT proxy and the SSH gateway, each on its own listener
  // (startServer starts them); OpenSSH mode (its routes and the bastion's upgrade endpoint).
  registerConnectProxy(app, deps, streams, auth);
  registerSshGateway(app, deps, streams, auth);
  registerOpenSsh(app, deps, streams, tunnels, auth);
  // The web terminal (an upgrade endpoint), for the admin web UI.
  registerWebTerminal(app, deps, streams, auth, () => tunnels.stopping);
  // Device web pages: each device port's page on an origin of its own (a host the API and UI never answer on).
  registerDeviceWeb(app, deps, streams, () => tunnels.stopping);
  // Remote diagnostics: the agent's read-only checks, through the stream router, with their stored history.
  registerDiagnostics(app, deps, streams);
  // VNC in the browser: a device's VNC port over a WebSocket (an upgrade endpoint), for the admin web UI.
  registerVnc(app, deps, streams, auth, () => tunnels.stopping);
  // File transfer to and from devices (streamed HTTP bodies), for the web UI and `fleetgate cp`.
  registerFileTransfer(app, deps, streams);
  // Last: the admin web UI, a client of everything above; unknown page paths fall back to it.
  await registerWebUi(app, config.webRoot);
  return app;
}

/** `/readyz` details: per certificate, when it expires and the whole days left. */
function certificateDetails(certificates: ServedCertificates) {
  return Object.fromEntries(
    certificates
      .expiry()
      .map((entry) => [
        entry.certificate,
        { validTo: entry.validTo.toISOString(), daysLeft: entry.daysLeft, expiringSoon: entry.expiringSoon },
      ]),
  );
}

function registerCertificateMetrics(registry: client.Registry, certificates: ServedCertificates): void {
  new Gauge({
    name: 'fleetgate_tls_certificate_expiry_seconds',
    help: 'Seconds until the served TLS certificate (server) and its CA (ca, when fleetgate issued it) expire; negative once expired',
    labelNames: ['certificate'] as const,
    registers: [registry],
    collect() {
      const now = Date.now();
      for (const entry of certificates.expiry(now)) {
        this.set({ certificate: entry.certificate }, Math.floor((entry.validTo.getTime() - now) / 1000));
      }
    },
  });
}

function registerDatabaseMetrics(registry: client.Registry, database: DatabaseHandle): void {
  new Gauge({
    name: 'fleetgate_db_pool_connections',
    help: 'Database connections by state (SQLite has one embedded connection)',
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      const stats = database.poolStats();
      this.set({ state: 'total' }, stats.total);
      this.set({ state: 'idle' }, stats.idle);
      this.set({ state: 'waiting' }, stats.waiting);
    },
  });
}
