export { registerDashboardRoutes } from './routes.ts';
export { type DashboardView, readDashboard } from './service.ts';
