// The two ways a Spring application talks to a STOMP broker, reduced to their wire behaviour:
//
// RelayTcpConnection: one TCP connection of StompBrokerRelayMessageHandler (the "system"
//   session or one per client session): frames encoded by StompEncoder and written whole,
//   bytes read through ReactorNettyTcpClient's decoder, heart-beats from
//   ReactorNettyTcpConnection.onWriteInactivity()/onReadInactivity() as set up by
//   StompBrokerRelayMessageHandler.SystemSessionConnectionHandler.initHeartbeats().
//
// SpringWsSession: WebSocketStompClient + DefaultStompSession: frames encoded by
//   SplittingStompEncoder and sent as one or more WebSocket messages
//   (WebSocketStompClient.StompWebSocketMessageCodec.encode()), received through
//   BufferingStompDecoder (StompWebSocketMessageCodec.decode()), heart-beats from
//   DefaultStompSession.initHeartbeatTasks() run by
//   WebSocketTcpConnectionHandlerAdapter.onWriteInactivity()/onReadInactivity().

import net from 'node:net';
import WebSocket from 'ws';

import { scaled } from '../lib/broker.mjs';
import { Inbox } from '../lib/stompjs-client.mjs';
import {
  BufferingStompDecoder, getHeartbeat, HEARTBEAT, NativeHeaders, NettyStompDecoder, splittingEncode, stompEncode,
} from './spring-codec.mjs';

function describeFrame(m) {
  return `${m.command} ${JSON.stringify(m.headers.toObject())} payload=${JSON.stringify(m.payload.toString('utf8').slice(0, 200))}`;
}

// Frames from the broker (heart-beats counted separately) plus read timing.
class Receiver {
  constructor() {
    this.inbox = new Inbox('STOMP frame');
    this.heartbeats = 0;
    this.lastRead = Date.now();
    this.maxReadGapMs = 0;
    this.closed = false;
    this.failure = null;  // a decode failure: Spring would drop the connection here
  }

  onBytes() {
    const now = Date.now();
    this.maxReadGapMs = Math.max(this.maxReadGapMs, now - this.lastRead);
    this.lastRead = now;
  }

  onMessages(messages) {
    for (const m of messages) {
      if (m.command === HEARTBEAT) this.heartbeats += 1; else this.inbox.put(m);
    }
  }

  async next(command, timeoutMs = scaled(5000)) {
    let m;
    try {
      m = await this.inbox.take(timeoutMs);
    } catch (err) {
      const why = this.failure ? ` (decode failure: ${this.failure.message})` : this.closed ? ' (connection closed)' : '';
      throw new Error(`${err.message} waiting for ${command}${why}`);
    }
    if (command && m.command !== command) throw new Error(`expected ${command}, got ${describeFrame(m)}`);
    return m;
  }

  // Resets the read-gap statistic, e.g. once CONNECTED arrived and heart-beating starts.
  resetReadGap() { this.lastRead = Date.now(); this.maxReadGapMs = 0; }
}

export class RelayTcpConnection extends Receiver {
  static open(port) {
    const c = new RelayTcpConnection();
    const decoder = new NettyStompDecoder();
    c.sock = net.connect({ port, host: '127.0.0.1' });
    c.sock.setNoDelay(true);  // Reactor Netty's TcpClient default
    c.sent = [];
    c.lastWrite = Date.now();
    c.sock.on('data', (chunk) => {
      c.onBytes();
      try { c.onMessages(decoder.decode(chunk)); } catch (err) { c.failure = err; c.sock.destroy(); }
    });
    c.sock.on('close', () => { c.closed = true; c.stopHeartbeats(); });
    c.sock.on('error', (err) => { c.error = err; });
    return new Promise((resolve, reject) => {
      c.sock.once('connect', () => resolve(c));
      c.sock.once('error', reject);
    });
  }

  // TcpConnection.sendAsync(): the whole encoded frame in one write.
  write(bytes) {
    this.sent.push(bytes);
    this.lastWrite = Date.now();
    return new Promise((resolve, reject) => this.sock.write(bytes, (err) => (err ? reject(err) : resolve())));
  }

  send(command, headers, payload, opts) { return this.write(stompEncode(command, headers, payload, opts)); }

  // SystemSessionConnectionHandler.initHeartbeats(connectedHeaders), with the CONNECT's own
  // heart-beat [cx, cy]. Returns the intervals it set up.
  initHeartbeats(connect, connected) {
    const [clientSend, clientReceive] = connect;
    const [serverSend, serverReceive] = getHeartbeat(connected.headers);
    const result = { writeIntervalMs: 0, readTimeoutMs: 0 };
    if (clientSend > 0 && serverReceive > 0) {
      result.writeIntervalMs = Math.max(clientSend, serverReceive);
      this.onWriteInactivity(result.writeIntervalMs);
    }
    if (clientReceive > 0 && serverSend > 0) {
      // HEARTBEAT_MULTIPLIER = 3
      result.readTimeoutMs = Math.max(clientReceive, serverSend) * 3;
    }
    this.resetReadGap();
    return result;
  }

  // Reactor Netty's onWriteIdle(duration): the heart-beat goes out once nothing was written
  // for `duration` ms, and that write restarts the idle clock.
  onWriteInactivity(durationMs) {
    const tick = () => {
      if (this.closed) return;
      const idle = Date.now() - this.lastWrite;
      if (idle >= durationMs) {
        this.write(stompEncode(HEARTBEAT)).catch(() => {});
        this.heartbeatsSent = (this.heartbeatsSent || 0) + 1;
        this.timer = setTimeout(tick, durationMs);
      } else {
        this.timer = setTimeout(tick, durationMs - idle);
      }
    };
    this.timer = setTimeout(tick, durationMs);
  }

  stopHeartbeats() { clearTimeout(this.timer); }

  close() { this.stopHeartbeats(); this.sock.destroy(); }

  waitClosed(timeoutMs = scaled(5000)) {
    if (this.closed) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.sock.once('close', () => { clearTimeout(timer); resolve(true); });
    });
  }
}

// WebSocketStompClient's defaults: DEFAULT_MESSAGE_MAX_SIZE = 64 * 1024 for both directions.
export const DEFAULT_MESSAGE_MAX_SIZE = 64 * 1024;

const isOctetStream = (contentType) => {
  if (!contentType) return false;
  const main = contentType.split(';')[0].trim().toLowerCase();
  return main === 'application/octet-stream' || main === 'application/*' || main === '*/*';
};

export class SpringWsSession extends Receiver {
  // protocols: what the application put into WebSocketHttpHeaders.setSecWebSocketProtocol();
  // WebSocketStompClient itself adds none.
  static open(url, { protocols, inboundMessageSizeLimit = DEFAULT_MESSAGE_MAX_SIZE,
                     outboundMessageSizeLimit = DEFAULT_MESSAGE_MAX_SIZE } = {}) {
    const c = new SpringWsSession();
    c.outboundMessageSizeLimit = outboundMessageSizeLimit;
    c.decoder = new BufferingStompDecoder(inboundMessageSizeLimit);
    c.sentMessages = [];  // every WebSocket message: { binary, bytes }
    c.receivedMessages = [];
    c.lastWriteTime = -1;
    c.lastReadTime = -1;
    c.subscriptionIndex = 0;  // DefaultStompSession.subscriptionIndex
    c.receiptIndex = 0;       // DefaultStompSession.receiptIndex
    c.timers = [];
    c.ws = protocols ? new WebSocket(url, protocols) : new WebSocket(url);
    c.ws.on('message', (data, isBinary) => {
      c.onBytes();
      c.receivedMessages.push({ binary: isBinary, bytes: data.length });
      // WebSocketTcpConnectionHandlerAdapter.handleMessage()
      c.lastReadTime = c.lastReadTime !== -1 ? Date.now() : -1;
      try { c.onMessages(c.decoder.decode(data)); } catch (err) { c.failure = err; c.ws.terminate(); }
    });
    c.ws.on('close', (code, reason) => { c.closed = { code, reason: reason.toString() }; c.cancelInactivityTasks(); });
    c.ws.on('error', (err) => { c.error = err; });
    return new Promise((resolve, reject) => {
      c.ws.once('open', () => resolve(c));
      c.ws.once('error', reject);
      c.ws.once('unexpected-response', (req, res) => reject(new Error(`handshake refused: HTTP ${res.statusCode}`)));
    });
  }

  get protocol() { return this.ws.protocol; }

  // WebSocketTcpConnectionHandlerAdapter.sendAsync() + StompWebSocketMessageCodec.encode():
  // binary WebSocket messages only for a non-empty application/octet-stream payload.
  async send(command, headers, payload = Buffer.alloc(0)) {
    const native = headers instanceof NativeHeaders ? headers : new NativeHeaders(headers);
    const frames = splittingEncode(this.outboundMessageSizeLimit, command, native, payload);
    const useBinary = payload.length > 0 && isOctetStream(native.first('content-type'));
    this.updateLastWriteTime();
    for (const frame of frames) {
      this.sentMessages.push({ binary: useBinary, bytes: frame.length });
      await new Promise((resolve, reject) => {
        this.ws.send(frame, { binary: useBinary }, (err) => (err ? reject(err) : resolve()));
      });
    }
    this.updateLastWriteTime();
    return frames;
  }

  updateLastWriteTime() { if (this.lastWriteTime !== -1) this.lastWriteTime = Date.now(); }

  // DefaultStompSession.checkOrAddReceipt() with autoReceipt enabled.
  nextReceipt() { return String(this.receiptIndex++); }

  nextSubscriptionId() { return String(this.subscriptionIndex++); }

  // DefaultStompSession.initHeartbeatTasks(connectedHeaders).
  initHeartbeatTasks(connect, connected) {
    const [sx, sy] = getHeartbeat(connected.headers);
    const result = { writeIntervalMs: 0, readTimeoutMs: 0 };
    if (connect[0] > 0 && sy > 0) {
      result.writeIntervalMs = Math.max(connect[0], sy);
      this.onWriteInactivity(result.writeIntervalMs);
    }
    if (connect[1] > 0 && sx > 0) {
      result.readTimeoutMs = Math.max(connect[1], sx) * 3;  // HEARTBEAT_MULTIPLIER
      this.onReadInactivity(result.readTimeoutMs);
    }
    this.resetReadGap();
    return result;
  }

  // WebSocketTcpConnectionHandlerAdapter.onWriteInactivity(): checked every duration / 2
  // (scheduleWithFixedDelay); a heart-beat when nothing was written for longer than duration.
  onWriteInactivity(duration) {
    this.lastWriteTime = Date.now();
    this.heartbeatsSent = 0;
    const t = setInterval(() => {
      if (Date.now() - this.lastWriteTime > duration) {
        // WriteInactivityTask: HEARTBEAT encoded as "\n", a text message.
        this.send(HEARTBEAT, [], Buffer.from('\n')).catch(() => {});
        this.heartbeatsSent += 1;
      }
    }, Math.floor(duration / 2));
    this.timers.push(t);
  }

  // WebSocketTcpConnectionHandlerAdapter.onReadInactivity(): ReadInactivityTask closes the
  // session ("Server has gone quiet") once nothing was read for longer than duration.
  onReadInactivity(duration) {
    this.lastReadTime = Date.now();
    const t = setInterval(() => {
      if (Date.now() - this.lastReadTime > duration) {
        this.serverWentQuiet = true;
        this.close();
      }
    }, Math.floor(duration / 2));
    this.timers.push(t);
  }

  cancelInactivityTasks() {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
  }

  close() {
    this.cancelInactivityTasks();
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(); else this.ws.terminate();
  }
}
