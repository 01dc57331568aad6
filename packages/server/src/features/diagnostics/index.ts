import type { TypedApp } from '../../infra/http/index.ts';
import type { ServiceDeps } from '../../infra/service/index.ts';
import type { StreamRouter } from '../remote-access/index.ts';
import { registerDiagnosticsRoutes } from './routes.ts';

export {
  DIAGNOSTICS_KEPT_PER_DEVICE,
  DIAGNOSTICS_TIMEOUT_MS,
  type DiagnosticsRunSummary,
  type DiagnosticsRunView,
  getDeviceDiagnostics,
  listDeviceDiagnostics,
  runDeviceDiagnostics,
} from './service.ts';

/**
 * Remote diagnostics (issue 16): `POST /api/v1/devices/:device/diagnostics` runs the agent's read-only checks
 * through the stream router and stores the report; `GET …/diagnostics` lists a device's runs, `GET …/:runId`
 * shows one.
 */
export function registerDiagnostics(app: TypedApp, deps: ServiceDeps, router: StreamRouter): void {
  registerDiagnosticsRoutes(app, deps, router);
}
