// Starts the real stompd binary for one test suite and stops it again.
//
// The binary comes from STOMPD_BIN (CTest sets it to $<TARGET_FILE:stompd>). Every broker gets
// ephemeral loopback ports, a fresh data directory and, when asked, a temporary YAML config;
// the bound ports are read from its `listening transport=... address=HOST:PORT` log lines.
// stderr is kept so a failing test can print what the broker said.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// Deadlines scale with STOMPD_E2E_TIME_SCALE (e.g. 3 under a slow sanitizer build on a busy
// machine); the defaults already leave room for ASan.
export const timeScale = Number(process.env.STOMPD_E2E_TIME_SCALE || '1') || 1;
export const scaled = (ms) => Math.round(ms * timeScale);

const startDeadlineMs = scaled(10_000);
const stopDeadlineMs = scaled(10_000);
// TLS listeners log transport=tcp+tls / websocket+tls; they are filed under tcp / websocket
// with tls: true.
const listeningRe = /listening transport=(\w+)(\+tls)? address=([0-9.]+):(\d+)(?: path=(\S+))?/;

const live = new Set();
// A test runner that dies half-way must not leave brokers behind.
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

// The shipped development config, and its guest user (passcode "guest"), which Spring's
// broker relay and most client examples log in as by default.
export const shippedConfig = path.resolve(path.dirname(fileURLToPath(import.meta.url)),
                                          '../../../conf/stompd.yaml');
export const guestUser = (() => {
  const m = /- name: guest\n\s+passcode: (\S+)/.exec(fs.readFileSync(shippedConfig, 'utf8'));
  if (!m) throw new Error(`${shippedConfig} has no guest user`);
  return { name: 'guest', passcode: m[1], roles: [] };
})();

export function brokerBinary() {
  const bin = process.env.STOMPD_BIN;
  if (!bin) {
    throw new Error('STOMPD_BIN is not set: run these tests through CTest, or set it to ' +
                    'the stompd binary (e.g. build/asan/broker/stompd)');
  }
  if (!fs.existsSync(bin)) throw new Error(`STOMPD_BIN=${bin} does not exist`);
  return path.resolve(bin);
}

// Writes a small YAML document from a plain object (nested maps of scalars, and arrays of
// scalars or maps), so tests can say { heartbeat: { send_interval_ms: 200 } } or
// { journal: { destinations: [{ pattern: '/topic/a.*', journaled: false }] } } without a
// YAML dependency. Scalars are written plain: keep them free of ': ' and ' #'.
export function toYaml(obj, indent = '') {
  let out = '';
  for (const [key, value] of Object.entries(obj)) {
    if (Array.isArray(value)) {
      out += `${indent}${key}:${value.length ? '' : ' []'}\n`;
      for (const item of value) {
        if (item !== null && typeof item === 'object') {
          // "- " then the map's first key on the same line, the rest indented under it.
          const inner = toYaml(item, `${indent}    `);
          out += `${indent}  - ${inner.slice(indent.length + 4)}`;
        } else {
          out += `${indent}  - ${item}\n`;
        }
      }
    } else if (value !== null && typeof value === 'object') {
      out += `${indent}${key}:\n${toYaml(value, indent + '  ')}`;
    } else {
      out += `${indent}${key}: ${value}\n`;
    }
  }
  return out;
}

export class Broker {
  constructor(child, dir) {
    this.child = child;
    this.dir = dir;
    this.stderr = '';
    this.listeners = {};  // transport -> { host, port, path }
    this.exit = null;     // { code, signal } once the process ended
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        live.delete(child);
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
  }

  get tcpPort() { return this.listeners.tcp.port; }
  get wsPort() { return this.listeners.websocket.port; }
  get wsUrl() {
    const ws = this.listeners.websocket;
    return `${ws.tls ? 'wss' : 'ws'}://${ws.host}:${ws.port}${ws.path || '/ws'}`;
  }

  // The broker's stderr, for assertion messages.
  log() { return `--- stompd stderr ---\n${this.stderr}--- end of stderr ---`; }

  // SIGTERM, then wait for a graceful exit. Resolves to { code, signal, graceful } where
  // graceful is false when the deadline passed and the broker had to be killed.
  async stop({ deadlineMs = stopDeadlineMs } = {}) {
    if (this.exit) return { ...this.exit, graceful: true };
    this.child.kill('SIGTERM');
    let timer;
    const timedOut = new Promise((resolve) => { timer = setTimeout(() => resolve(null), deadlineMs); });
    const result = await Promise.race([this.exited, timedOut]);
    clearTimeout(timer);
    if (result) return { ...result, graceful: true };
    this.child.kill('SIGKILL');
    const killed = await this.exited;
    return { ...killed, graceful: false };
  }

  // SIGKILL (a crash: no shutdown, no journal flush) and wait for the process to be gone.
  async kill() {
    if (this.exit) return this.exit;
    this.child.kill('SIGKILL');
    return this.exited;
  }

  // Stops the broker and removes its data directory (after() hooks).
  async dispose() {
    const result = await this.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
    return result;
  }
}

// Starts stompd and resolves once both listeners are up.
//   config:  object written as the --config YAML file (heartbeat, limits, ...)
//   configFile: a YAML file to use as it is instead (shippedConfig); ports and data come
//            from the flags either way
//   tcp, ws, admin: "HOST:PORT" (default 127.0.0.1:0)
//   dataDir: reuse a data directory (restart tests); a fresh one otherwise
//   logLevel: --log-level (default info)
//   extraArgs: more command-line arguments, appended after the ones above (e.g.
//            ['--redis', '127.0.0.1:6379']); not a flag this already passes
export async function startBroker({
  config, configFile, tcp = '127.0.0.1:0', ws = '127.0.0.1:0', admin = '127.0.0.1:0', dataDir,
  logLevel = 'info', extraArgs = [],
} = {}) {
  const bin = brokerBinary();
  const dir = dataDir ? path.dirname(dataDir) : fs.mkdtempSync(path.join(os.tmpdir(), 'stompd-e2e-'));
  const data = dataDir || path.join(dir, 'data');
  fs.mkdirSync(data, { recursive: true });
  // The admin listener too gets a free port, so brokers of parallel tests never collide.
  const args = ['--tcp', tcp, '--ws', ws, '--admin', admin, '--data', data, '--log-level', logLevel];
  if (configFile) args.push('--config', configFile);
  if (config) {
    const file = path.join(dir, `config-${process.pid}-${Date.now()}.yaml`);
    fs.writeFileSync(file, toYaml(config));
    args.push('--config', file);
  }
  args.push(...extraArgs);
  // Run in the temporary directory: stompd reads conf/stompd.yaml from its working directory
  // when no --config is given, and the tests must not depend on where they were started.
  const child = spawn(bin, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  live.add(child);
  const broker = new Broker(child, dir);
  broker.dataDir = data;
  broker.args = args;

  await new Promise((resolve, reject) => {
    let pending = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`stompd did not report both listeners within ${startDeadlineMs} ms ` +
                       `(args: ${args.join(' ')})\n${broker.log()}`));
    }, startDeadlineMs);
    const done = (err) => {
      clearTimeout(timer);
      if (err) reject(err); else resolve();
    };
    child.on('error', (err) => done(new Error(`cannot start ${bin}: ${err.message}`)));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => {
      broker.stderr += chunk;
      pending += chunk;
      let nl;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        const m = listeningRe.exec(line);
        if (m) broker.listeners[m[1]] = { host: m[3], port: Number(m[4]), path: m[5], tls: Boolean(m[2]) };
        if (broker.listeners.tcp && broker.listeners.websocket) done();
      }
    });
    broker.exited.then((exit) => {
      done(new Error(`stompd exited early (code ${exit.code}, signal ${exit.signal}) ` +
                     `with args ${args.join(' ')}\n${broker.log()}`));
    });
  });
  return broker;
}
