// Fails when ui/openapi.json or ui/src/api/schema.d.ts no longer match what the control plane
// (../.venv/bin/streamspace openapi) and openapi-typescript produce today.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ui = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const tmp = mkdtempSync(join(tmpdir(), 'streamspace-api-'));
const bin = (name) => join(ui, 'node_modules', '.bin', name);
const STALE = 'UI API types are out of date: run npm run gen:api';

try {
  const spec = join(tmp, 'openapi.json');
  const types = join(tmp, 'schema.d.ts');
  execFileSync(resolve(ui, '../.venv/bin/streamspace'), ['openapi', '-o', spec], { stdio: 'inherit' });
  execFileSync(bin('openapi-typescript'), [spec, '-o', types], { stdio: ['ignore', 'ignore', 'inherit'] });
  const stale = [];
  if (readFileSync(spec, 'utf8') !== readFileSync(join(ui, 'openapi.json'), 'utf8')) stale.push('openapi.json');
  if (readFileSync(types, 'utf8') !== readFileSync(join(ui, 'src/api/schema.d.ts'), 'utf8')) {
    stale.push('src/api/schema.d.ts');
  }
  if (stale.length > 0) {
    console.error(`${STALE} (differs: ${stale.join(', ')})`);
    process.exitCode = 1;
  } else {
    console.log('UI API types are up to date');
  }
} catch (err) {
  console.error(`check:api failed: ${err instanceof Error ? err.message : String(err)}`);
  console.error(STALE);
  process.exitCode = 1;
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
