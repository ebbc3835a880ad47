// Byte-level STOMP for tests that must control exactly what goes on the wire: a frame encoder,
// a streaming decoder that follows STOMP 1.2 ("Augmented BNF", "Value Encoding",
// "Heart-beating"), and clients over a raw `ws` WebSocket or a raw TCP socket that queue every
// frame the broker sends, so tests wait on frames with deadlines instead of sleeping.

import net from 'node:net';
import WebSocket from 'ws';

import { scaled } from './broker.mjs';

export const NUL = Buffer.from([0]);

// STOMP 1.2 "Value Encoding": CONNECT and CONNECTED frames are never escaped.
export function escapeValue(s) {
  return String(s).replace(/\\/g, '\\\\').replace(/\r/g, '\\r').replace(/\n/g, '\\n').replace(/:/g, '\\c');
}

export function unescapeValue(s) {
  return s.replace(/\\(.)/g, (m, c) => {
    switch (c) {
      case 'r': return '\r';
      case 'n': return '\n';
      case 'c': return ':';
      case '\\': return '\\';
      default: throw new Error(`undefined escape sequence ${m} in header ${JSON.stringify(s)}`);
    }
  });
}

// Builds one frame. headers: object or array of [name, value] pairs (order kept); body:
// string or Buffer. Values are escaped unless escape is false or the command is CONNECT/STOMP.
export function encodeFrame(command, headers = {}, body = '', { escape = true } = {}) {
  const pairs = Array.isArray(headers) ? headers : Object.entries(headers);
  const doEscape = escape && command !== 'CONNECT' && command !== 'STOMP';
  let head = `${command}\n`;
  for (const [k, v] of pairs) {
    head += doEscape ? `${escapeValue(k)}:${escapeValue(v)}\n` : `${k}:${v}\n`;
  }
  head += '\n';
  return Buffer.concat([Buffer.from(head, 'utf8'), Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8'), NUL]);
}

// Streaming decoder for frames a server sends. push() takes any chunk; complete frames and
// heart-beats (EOLs between frames) are delivered through the callbacks. A malformed frame
// throws: for a test, that is a broker bug worth failing on.
export class FrameDecoder {
  constructor({ onFrame, onHeartbeat = () => {} }) {
    this.buf = Buffer.alloc(0);
    this.onFrame = onFrame;
    this.onHeartbeat = onHeartbeat;
  }

  push(chunk) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : Buffer.from(chunk);
    for (;;) {
      // EOLs between frames are heart-beats (STOMP 1.2, "Heart-beating").
      if (this.buf[0] === 0x0a) { this.buf = this.buf.subarray(1); this.onHeartbeat(); continue; }
      if (this.buf[0] === 0x0d) {
        if (this.buf.length < 2) return;
        if (this.buf[1] !== 0x0a) throw new Error('CR not followed by LF between frames');
        this.buf = this.buf.subarray(2); this.onHeartbeat(); continue;
      }
      if (this.buf.length === 0) return;
      const frame = this.tryFrame();
      if (!frame) return;
      this.onFrame(frame);
    }
  }

  tryFrame() {
    const b = this.buf;
    let pos = 0;
    const lines = [];
    for (;;) {
      const nl = b.indexOf(0x0a, pos);
      if (nl < 0) return null;
      let end = nl;
      if (end > pos && b[end - 1] === 0x0d) end -= 1;
      const line = b.subarray(pos, end).toString('utf8');
      pos = nl + 1;
      if (line === '' && lines.length > 0) break;
      lines.push(line);
    }
    const command = lines[0];
    const rawHeaders = [];
    const escaped = command !== 'CONNECTED';
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon <= 0) throw new Error(`malformed header line ${JSON.stringify(line)} in ${command}`);
      const k = line.slice(0, colon);
      const v = line.slice(colon + 1);
      rawHeaders.push([escaped ? unescapeValue(k) : k, escaped ? unescapeValue(v) : v]);
    }
    const headers = {};
    // STOMP 1.2: with a repeated header, the first occurrence wins.
    for (const [k, v] of rawHeaders) if (!(k in headers)) headers[k] = v;
    let body;
    let next;
    if (headers['content-length'] !== undefined) {
      const len = Number(headers['content-length']);
      if (!Number.isInteger(len) || len < 0) throw new Error(`bad content-length ${headers['content-length']}`);
      if (b.length < pos + len + 1) return null;
      body = b.subarray(pos, pos + len);
      if (b[pos + len] !== 0) throw new Error(`${command}: no NUL after content-length ${len} bytes`);
      next = pos + len + 1;
    } else {
      const nul = b.indexOf(0, pos);
      if (nul < 0) return null;
      body = b.subarray(pos, nul);
      next = nul + 1;
    }
    this.buf = b.subarray(next);
    return { command, headers, rawHeaders, rawLines: lines.slice(1), body: Buffer.from(body), text: body.toString('utf8') };
  }
}

function describe(frame) {
  return `${frame.command} ${JSON.stringify(frame.headers)} body=${JSON.stringify(frame.text.slice(0, 200))}`;
}

// Shared queueing for the raw clients: frames wait in a queue until a test takes them.
class FrameQueue {
  constructor() {
    this.frames = [];
    this.waiters = [];
    this.heartbeats = 0;
    this.heartbeatTimes = [];
    this.closed = null;  // { code, reason } / { hadError } once closed
    this.closeWaiters = [];
    this.decoder = new FrameDecoder({
      onFrame: (f) => this.deliver(f),
      onHeartbeat: () => { this.heartbeats += 1; this.heartbeatTimes.push(Date.now()); },
    });
    this.lastRead = Date.now();
  }

  feed(chunk) {
    this.lastRead = Date.now();
    this.decoder.push(chunk);
  }

  deliver(frame) {
    const w = this.waiters.shift();
    if (w) w.resolve(frame); else this.frames.push(frame);
  }

  markClosed(info) {
    if (this.closed) return;
    this.closed = info;
    const why = this.decodeError ? ` after an undecodable frame: ${this.decodeError.message}` : '';
    for (const w of this.waiters.splice(0)) {
      w.reject(new Error(`connection closed (${JSON.stringify(info)}) while waiting for a frame${why}`));
    }
    for (const r of this.closeWaiters.splice(0)) r(info);
  }

  // Next frame from the server (heart-beats are counted, not returned).
  nextFrame(timeoutMs = scaled(5000)) {
    if (this.frames.length) return Promise.resolve(this.frames.shift());
    if (this.closed) return Promise.reject(new Error(`connection already closed (${JSON.stringify(this.closed)})`));
    return new Promise((resolve, reject) => {
      const w = {
        resolve: (f) => { clearTimeout(w.timer); resolve(f); },
        reject: (e) => { clearTimeout(w.timer); reject(e); },
      };
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`no frame within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  // Next frame, which must have the given command; reports the frame otherwise.
  async expectFrame(command, timeoutMs) {
    const f = await this.nextFrame(timeoutMs);
    if (f.command !== command) throw new Error(`expected ${command}, got ${describe(f)}`);
    return f;
  }

  // Resolves with the close info once the server closed the connection, or null on timeout.
  waitClosed(timeoutMs = scaled(5000)) {
    if (this.closed) return Promise.resolve(this.closed);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(null), timeoutMs);
      this.closeWaiters.push((info) => { clearTimeout(timer); resolve(info); });
    });
  }
}

// A STOMP client over a raw `ws` WebSocket. Every WebSocket message the broker sends is
// recorded in `messages` ({ binary, bytes }) so tests can see how frames were framed.
export class RawWsClient extends FrameQueue {
  static open(url, protocols, options = {}) {
    const c = new RawWsClient();
    const ws = protocols === undefined ? new WebSocket(url, options) : new WebSocket(url, protocols, options);
    c.ws = ws;
    c.messages = [];
    c.pongs = [];
    ws.on('message', (data, isBinary) => {
      c.messages.push({ binary: isBinary, bytes: data.length });
      try { c.feed(data); } catch (err) { c.decodeError = err; ws.terminate(); }
    });
    ws.on('pong', (data) => c.pongs.push(Buffer.from(data)));
    ws.on('close', (code, reason) => c.markClosed({ code, reason: reason.toString() }));
    ws.on('error', (err) => { c.error = err; });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`WebSocket ${url} did not open`)), scaled(5000));
      ws.once('open', () => { clearTimeout(timer); resolve(c); });
      ws.once('error', (err) => { clearTimeout(timer); reject(err); });
      ws.once('unexpected-response', (req, res) => {
        clearTimeout(timer);
        reject(new Error(`WebSocket handshake refused: HTTP ${res.statusCode}`));
      });
    });
  }

  get protocol() { return this.ws.protocol; }

  // One WebSocket message (text unless binary), resolved once written.
  send(data, { binary = false } = {}) {
    return new Promise((resolve, reject) => {
      this.ws.send(data, { binary }, (err) => (err ? reject(err) : resolve()));
    });
  }

  sendFrame(command, headers, body, opts) { return this.send(encodeFrame(command, headers, body), opts); }

  // CONNECT (1.2 by default) and the CONNECTED reply.
  async connect(headers = { 'accept-version': '1.2', host: 'localhost' }) {
    await this.sendFrame('CONNECT', headers);
    return this.expectFrame('CONNECTED');
  }

  close() {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
  }
}

// The same over a raw TCP socket.
export class RawTcpClient extends FrameQueue {
  static open(port, host = '127.0.0.1') {
    const c = new RawTcpClient();
    const sock = net.connect({ port, host });
    c.sock = sock;
    sock.setNoDelay(true);
    sock.on('data', (d) => {
      try { c.feed(d); } catch (err) { c.decodeError = err; sock.destroy(); }
    });
    sock.on('close', (hadError) => c.markClosed({ hadError }));
    sock.on('error', (err) => { c.error = err; });
    return new Promise((resolve, reject) => {
      sock.once('connect', () => resolve(c));
      sock.once('error', reject);
    });
  }

  send(data) {
    return new Promise((resolve, reject) => {
      this.sock.write(data, (err) => (err ? reject(err) : resolve()));
    });
  }

  sendFrame(command, headers, body) { return this.send(encodeFrame(command, headers, body)); }

  async connect(headers = { 'accept-version': '1.2', host: 'localhost' }) {
    await this.sendFrame('CONNECT', headers);
    return this.expectFrame('CONNECTED');
  }

  close() { this.sock.destroy(); }
}

// Resolves when cond() is true, polling every few ms; rejects after timeoutMs.
export async function waitFor(cond, timeoutMs = scaled(5000), what = 'condition') {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
