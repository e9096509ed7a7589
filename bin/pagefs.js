#!/usr/bin/env node
// The pagefs command: the compiled CLI lives in dist/ (npm run build).
import('../dist/cli/main.js').catch((e) => {
  if (e && e.code === 'ERR_MODULE_NOT_FOUND') {
    process.stderr.write('pagefs: not built yet; run: npm run build\n');
    process.exit(1);
  }
  throw e;
});
