import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

/**
 * `vite build` writes dist/: index.html plus content-hashed files under dist/assets (served for a year by the
 * server). `vite` (npm run dev -w @fleetgate/web) serves the sources with the API proxied to a running
 * fleetgate on 127.0.0.1:8080.
 */
export default defineConfig({
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    reportCompressedSize: false,
    chunkSizeWarningLimit: 1024,
  },
  // `ws`: the web terminal's WebSocket goes through too.
  server: { proxy: { '/api': { target: 'http://127.0.0.1:8080', ws: true } } },
});
