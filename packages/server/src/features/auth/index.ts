/**
 * Sign-in, sessions and the browser's cookie: the app's one `AuthService`, what the other surfaces (SSH, CONNECT,
 * WebSocket upgrades) check credentials with. Other features use only what is exported here.
 */
export { personOfBrowserUpgrade } from './browser-upgrade.ts';
export { registerAuthRoutes } from './routes.ts';
export {
  API_KEY_PREFIX,
  type AuthService,
  createAuthService,
  currentServicePrincipal,
  currentUserPrincipal,
} from './service.ts';
