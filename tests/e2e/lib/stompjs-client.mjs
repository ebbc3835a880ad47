// @stomp/stompjs as a browser app uses it, on Node: the `ws` package stands in for the browser's
// WebSocket (Node 18 has no global one), offering the three STOMP subprotocols the way
// browsers are usually told to. Callbacks feed queues so tests await frames with deadlines.

import { Client } from '@stomp/stompjs';
import WebSocket from 'ws';

import { scaled } from './broker.mjs';
import { waitFor } from './stomp-raw.mjs';

export const stompProtocols = ['v12.stomp', 'v11.stomp', 'v10.stomp'];

// An unbounded queue of values with awaitable, deadline-bound take().
export class Inbox {
  constructor(what = 'message') {
    this.what = what;
    this.items = [];
    this.all = [];
    this.waiters = [];
  }

  put(v) {
    this.all.push(v);
    const w = this.waiters.shift();
    if (w) w(v); else this.items.push(v);
  }

  take(timeoutMs = scaled(5000)) {
    if (this.items.length) return Promise.resolve(this.items.shift());
    return new Promise((resolve, reject) => {
      const waiter = (v) => { clearTimeout(timer); resolve(v); };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error(`no ${this.what} within ${timeoutMs} ms (got ${this.all.length} so far)`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  async takeN(n, timeoutMs = scaled(5000)) {
    const out = [];
    const deadline = Date.now() + timeoutMs;
    while (out.length < n) out.push(await this.take(Math.max(1, deadline - Date.now())));
    return out;
  }
}

// A stompjs Client with bookkeeping. `state` records every CONNECTED, ERROR, WebSocket close
// and incoming heart-beat; config overrides the defaults (no heart-beats, no reconnect).
// wsOptions go to the `ws` constructor (origin, rejectUnauthorized, headers, ...).
export function makeClient(url, { protocols = stompProtocols, wsOptions, ...config } = {}) {
  const state = {
    connects: new Inbox('CONNECTED'),
    errors: new Inbox('ERROR frame'),
    closes: new Inbox('WebSocket close'),
    heartbeats: 0,
    heartbeatsLost: 0,
    sockets: [],
  };
  const userOnConnect = config.onConnect;
  delete config.onConnect;
  const client = new Client({
    webSocketFactory: () => {
      const ws = wsOptions ? new WebSocket(url, protocols, wsOptions) : new WebSocket(url, protocols);
      state.sockets.push(ws);
      return ws;
    },
    reconnectDelay: 0,
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
    debug: () => {},
    onConnect: (frame) => {
      if (userOnConnect) userOnConnect(frame);
      state.connects.put(frame);
    },
    onStompError: (frame) => state.errors.put(frame),
    onWebSocketClose: (evt) => state.closes.put({ code: evt.code, reason: evt.reason }),
    onHeartbeatReceived: () => { state.heartbeats += 1; },
    onHeartbeatLost: () => { state.heartbeatsLost += 1; },
    ...config,
  });
  client.e2e = state;
  return client;
}

// Activates the client and waits for CONNECTED; fails fast on an ERROR frame or a close.
export async function connectClient(url, config = {}) {
  const client = makeClient(url, config);
  client.activate();
  const state = client.e2e;
  await waitFor(() => state.connects.all.length || state.errors.all.length || state.closes.all.length,
                scaled(10_000), `CONNECTED from ${url}`);
  if (!state.connects.all.length) {
    const err = state.errors.all[0];
    await shutdown(client);
    throw new Error(err ? `ERROR instead of CONNECTED: ${JSON.stringify(err.headers)} ${err.body}`
                        : `WebSocket closed before CONNECTED: ${JSON.stringify(state.closes.all[0])}`);
  }
  const connected = await state.connects.take();
  return { client, connected };
}

// Subscribes and waits for the broker's RECEIPT, so a publish right after cannot race it.
// The inbox keeps the RECEIPT frame (`receipt`) and how many MESSAGEs arrived before it
// (`beforeReceipt`: the replayed ones when the SUBSCRIBE asked for history).
let receiptSeq = 0;
export async function subscribe(client, destination, headers = {}) {
  const inbox = new Inbox(`MESSAGE on ${destination}`);
  const receipt = `sub-${process.pid}-${++receiptSeq}`;
  // stomp.js hands frames to these callbacks in the order they arrived.
  const got = new Promise((resolve) => client.watchForReceipt(receipt, (frame) => {
    inbox.receipt = frame;
    inbox.beforeReceipt = inbox.all.length;
    resolve(frame);
  }));
  const sub = client.subscribe(destination, (m) => inbox.put(m), { ...headers, receipt });
  inbox.subscription = sub;
  await withDeadline(got, scaled(5000), `RECEIPT for SUBSCRIBE ${destination}`);
  return inbox;
}

// Publishes with a receipt and waits for it.
export async function publishConfirmed(client, params) {
  const receipt = `pub-${process.pid}-${++receiptSeq}`;
  const got = new Promise((resolve) => client.watchForReceipt(receipt, resolve));
  client.publish({ ...params, headers: { ...(params.headers || {}), receipt } });
  return withDeadline(got, scaled(5000), `RECEIPT for SEND ${params.destination}`);
}

export function withDeadline(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms); }),
  ]);
}

export async function shutdown(...clients) {
  await Promise.all(clients.filter(Boolean).map((c) => c.deactivate({ force: true }).catch(() => {})));
}

// "Load older messages", as the README shows it: the `limit` messages before x-seq
// `beforeSeq`, oldest first, and whether there are older ones still.
export function loadOlder(client, destination, beforeSeq, limit = 50) {
  return new Promise((resolve) => {
    const id = `older-${beforeSeq}-${Math.random().toString(36).slice(2)}`;
    const messages = [];
    client.watchForReceipt(id, (receipt) => {
      subscription.unsubscribe();  // ended already; this only forgets it in stomp.js
      resolve({ messages, older: receipt.headers['x-replay-older'] === 'true' });
    });
    const subscription = client.subscribe(destination, (msg) => messages.push(msg), {
      id, receipt: id, 'x-replay': `before:${beforeSeq}`, 'x-replay-limit': String(limit),
    });
  });
}
