// Fails when src/openapi.ts is not what openapi-typescript makes of docs/openapi.json
// now: the client's types cannot drift from the API. `npm run generate` updates it.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const dir = mkdtempSync(path.join(tmpdir(), 'openapi-ts-'));
try {
  const fresh = path.join(dir, 'openapi.ts');
  execFileSync(
    process.execPath,
    [path.join(root, 'node_modules/openapi-typescript/bin/cli.js'), path.join(root, '../../docs/openapi.json'), '--output', fresh],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  if (readFileSync(fresh, 'utf8') !== readFileSync(path.join(root, 'src/openapi.ts'), 'utf8')) {
    console.error('src/openapi.ts is stale: run `npm run generate` in clients/js and commit it');
    process.exit(1);
  }
  console.log('src/openapi.ts matches docs/openapi.json');
} finally {
  rmSync(dir, { recursive: true, force: true });
}
