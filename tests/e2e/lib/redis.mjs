// A real redis-server for one test suite: its own free loopback port and its own temporary
// directory, never the system service (the Node twin of tests/e2e/python/redis_support.py and
// tests/support/redis_server.cpp). Nothing is persisted (--save "" --appendonly no).
//
// The binary is STOMPD_REDIS_SERVER, else /usr/bin/redis-server (Debian's redis-server,
// installed by scripts/install-deps test). Without it startRedis() throws, naming what to
// install, so the test fails: a cluster test that quietly did not run would look like one
// that passed.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { scaled } from './broker.mjs';

const defaultBinary = '/usr/bin/redis-server';
const attempts = 5;  // fresh ports to try when the one picked was taken before redis bound it
const startDeadlineMs = scaled(10_000);

const live = new Set();
// A test runner that dies half-way must not leave redis-servers behind.
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

export function redisBinary() {
  const bin = process.env.STOMPD_REDIS_SERVER || defaultBinary;
  if (!fs.existsSync(bin)) {
    throw new Error(`no redis-server at ${bin}: run "scripts/install-deps test" (Debian's ` +
                    'redis-server), or set STOMPD_REDIS_SERVER');
  }
  return bin;
}

// A port the kernel just gave out and took back: free unless someone races us for it
// (startRedis then tries another).
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// Resolves true when something on 127.0.0.1:port answers a raw PING with +PONG, false on any
// error or after timeoutMs.
function answersPing(port, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let reply = '';
    const finish = (ok) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk;
      if (reply.includes('\r\n')) finish(reply.startsWith('+PONG'));
    });
    socket.on('error', () => finish(false));
    socket.on('close', () => finish(false));
  });
}

export class Redis {
  constructor(child, port, dir) {
    this.child = child;
    this.port = port;
    this.dir = dir;
    this.exit = null;
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        live.delete(child);
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
  }

  // "127.0.0.1:PORT", what --redis takes.
  get address() { return `127.0.0.1:${this.port}`; }

  // The tail of redis.log, for assertion messages.
  log(tail = 4000) {
    let text;
    try {
      text = fs.readFileSync(path.join(this.dir, 'redis.log'), 'utf8');
    } catch {
      text = '(no redis.log)\n';
    }
    return `--- redis.log ---\n${text.slice(-tail)}--- end of redis.log ---`;
  }

  // SIGKILL (nothing is persisted, so there is nothing to shut down cleanly) and wait.
  async kill() {
    if (this.exit) return this.exit;
    this.child.kill('SIGKILL');
    return this.exited;
  }

  // Kills it and removes its directory (after() hooks).
  async dispose() {
    await this.kill();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

// Starts redis-server on a free loopback port in a fresh directory; resolves once it answers
// PING.
export async function startRedis() {
  const bin = redisBinary();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stompd-e2e-redis-'));
  try {
    for (let attempt = 0; attempt < attempts; ++attempt) {
      const port = await freePort();
      const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir,
                    '--logfile', path.join(dir, 'redis.log'), '--save', '', '--appendonly', 'no',
                    '--daemonize', 'no'];
      const child = spawn(bin, args, { cwd: dir, stdio: 'ignore' });
      live.add(child);
      const redis = new Redis(child, port, dir);
      let spawnError = null;
      child.on('error', (err) => { spawnError = err; });
      const deadline = Date.now() + startDeadlineMs;
      for (;;) {
        if (spawnError) throw new Error(`cannot start ${bin}: ${spawnError.message}`);
        if (await answersPing(port)) return redis;
        if (redis.exit) break;  // exited: the port was taken? try another
        if (Date.now() > deadline) {
          await redis.kill();
          throw new Error(`redis-server on port ${port} did not answer PING within ` +
                          `${startDeadlineMs} ms\n${redis.log()}`);
        }
        await new Promise((r) => setTimeout(r, 20));  // polling a process start
      }
    }
    const log = fs.existsSync(path.join(dir, 'redis.log'))
      ? fs.readFileSync(path.join(dir, 'redis.log'), 'utf8').slice(-4000) : '(no redis.log)';
    throw new Error(`redis-server did not start on a free port in ${attempts} attempts\n${log}`);
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
