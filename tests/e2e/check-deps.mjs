// CTest fixture for the Node end-to-end tests: fails with a clear message when Node.js is too
// old or the npm dependencies are missing, instead of an ERR_MODULE_NOT_FOUND in every test.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const problems = [];

const major = Number(process.versions.node.split('.')[0]);
if (major < 18) problems.push(`Node.js ${process.versions.node} is too old: the tests need 18 or newer`);

const lock = JSON.parse(fs.readFileSync(path.join(here, 'package-lock.json'), 'utf8'));
for (const name of ['@stomp/stompjs', 'ws', 'puppeteer-core']) {
  const want = lock.packages[`node_modules/${name}`]?.version;
  const file = path.join(here, 'node_modules', name, 'package.json');
  if (!fs.existsSync(file)) {
    problems.push(`${name} is not installed`);
    continue;
  }
  const have = JSON.parse(fs.readFileSync(file, 'utf8')).version;
  if (want && have !== want) problems.push(`${name} ${have} is installed, package-lock.json wants ${want}`);
}

if (problems.length) {
  console.error(`e2e: ${problems.join('; ')}.\n` +
                `e2e: run "npm ci --prefix ${path.relative(process.cwd(), here) || '.'}" (scripts/test does).`);
  process.exit(1);
}
console.log(`e2e: Node.js ${process.versions.node}, npm dependencies as locked`);
