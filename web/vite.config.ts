import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// The bundle is served by the Palisade server under a CSP of script-src 'self': no inline
// scripts or styles, no eval, so nothing here may emit them (modulepreload polyfill is inline).
export default defineConfig({
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
    chunkSizeWarningLimit: 800,
  },
});
