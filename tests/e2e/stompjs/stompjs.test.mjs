// @stomp/stompjs 7 against the real stompd over WebSocket: what a browser app does.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { scaled, startBroker } from '../lib/broker.mjs';
import { waitFor } from '../lib/stomp-raw.mjs';
import {
  connectClient, Inbox, makeClient, publishConfirmed, shutdown, subscribe,
} from '../lib/stompjs-client.mjs';

const T = { timeout: scaled(30_000) };

describe('stomp.js over WebSocket', () => {
  let broker;
  const clients = [];
  const connect = async (config) => {
    const { client, connected } = await connectClient(broker.wsUrl, config);
    clients.push(client);
    return { client, connected };
  };

  before(async () => { broker = await startBroker(); });
  after(async () => {
    await shutdown(...clients);
    const exit = await broker.dispose();
    assert.deepEqual([exit.code, exit.graceful], [0, true], `stompd did not exit cleanly\n${broker.log()}`);
  });

  it('ConnectsWithVersion12AndTheV12Subprotocol', T, async () => {
    const { client, connected } = await connect();
    assert.equal(connected.headers.version, '1.2');
    assert.equal(client.connectedVersion, '1.2');
    assert.match(connected.headers.server ?? '', /^stompd\/\d+\.\d+\.\d+/, 'server header');
    assert.ok(connected.headers.session, 'CONNECTED carries a session header');
    assert.match(connected.headers['heart-beat'] ?? '', /^\d+,\d+$/, 'heart-beat header');
    // The client offered v12.stomp first; the broker must echo one it accepted.
    assert.equal(client.webSocket.protocol, 'v12.stomp');
  });

  it('DeliversATopicMessageToASubscriber', T, async () => {
    const { client: sub } = await connect();
    const { client: pub } = await connect();
    const inbox = await subscribe(sub, '/topic/e2e.basic');
    pub.publish({ destination: '/topic/e2e.basic', body: 'hello, topic' });
    const m = await inbox.take();
    assert.equal(m.body, 'hello, topic');
    assert.equal(m.headers.destination, '/topic/e2e.basic');
    assert.equal(m.headers.subscription, inbox.subscription.id);
    assert.ok(m.headers['message-id'], 'MESSAGE carries message-id');
    assert.equal(m.headers.ack, undefined, 'no ack header for an auto-ack subscription');
  });

  it('AnswersAReceiptForEveryFrameThatAsksForOne', T, async () => {
    const { client } = await connect();
    const receipt = await publishConfirmed(client, { destination: '/topic/e2e.receipt', body: 'x' });
    assert.equal(receipt.command, 'RECEIPT');
    assert.match(receipt.headers['receipt-id'], /^pub-/);
  });

  it('KeepsBinaryBodiesWithNulBytesIntact', T, async () => {
    const { client: sub } = await connect();
    const { client: pub } = await connect();
    const inbox = await subscribe(sub, '/topic/e2e.binary');
    const body = new Uint8Array(1024);
    for (let i = 0; i < body.length; i += 1) body[i] = i % 256;  // 0x00 included, 4 times
    pub.publish({ destination: '/topic/e2e.binary', binaryBody: body,
                  headers: { 'content-type': 'application/octet-stream' } });
    const m = await inbox.take();
    assert.equal(m.headers['content-length'], String(body.length));
    assert.equal(m.headers['content-type'], 'application/octet-stream');
    assert.deepEqual(Buffer.from(m.binaryBody), Buffer.from(body));
  });

  it('KeepsUtf8BodiesAndHeaderValues', T, async () => {
    const { client: sub } = await connect();
    const { client: pub } = await connect();
    const inbox = await subscribe(sub, '/topic/e2e.utf8');
    const body = 'grüße, 日本語, emoji 😀 and a NUL-free text body';
    pub.publish({ destination: '/topic/e2e.utf8', body, headers: { 'x-name': 'Zoë ☃' } });
    const m = await inbox.take();
    assert.equal(m.body, body);
    assert.equal(m.headers['x-name'], 'Zoë ☃');
    if (m.headers['content-length'] !== undefined) {
      assert.equal(m.headers['content-length'], String(Buffer.byteLength(body)), 'content-length counts bytes');
    }
  });

  it('DeliversAMessageNearTheBodyLimit', T, async () => {
    // 900 KiB: below the default max_body_bytes (1 MiB), far above one TCP segment or
    // WebSocket frame, so reassembly and the outbound queue both take part.
    const { client: sub } = await connect();
    const { client: pub } = await connect();
    const inbox = await subscribe(sub, '/topic/e2e.large');
    const body = new Uint8Array(900 * 1024);
    for (let i = 0; i < body.length; i += 1) body[i] = (i * 31) % 251;
    await publishConfirmed(pub, { destination: '/topic/e2e.large', binaryBody: body });
    const m = await inbox.take(scaled(10_000));
    assert.equal(m.binaryBody.length, body.length);
    assert.ok(Buffer.from(m.binaryBody).equals(Buffer.from(body)));
  });

  it('PassesCustomHeadersThroughWithEscapedCharacters', T, async () => {
    const { client: sub } = await connect();
    const { client: pub } = await connect();
    const inbox = await subscribe(sub, '/topic/e2e.headers');
    const headers = {
      'x-trace-id': 'abc-123',
      // stomp.js unescapes with sequential replace() calls, so a backslash followed by "n",
      // "r" or "c" comes back wrong whatever the broker sends; raw-websocket.test.mjs checks
      // those bytes exactly.
      'x-tricky': 'colon:back\\slash\nnewline\rcr',
      'content-type': 'application/json;charset=utf-8',
    };
    pub.publish({ destination: '/topic/e2e.headers', body: '{"a":1}', headers });
    const m = await inbox.take();
    assert.equal(m.headers['x-trace-id'], 'abc-123');
    assert.equal(m.headers['x-tricky'], headers['x-tricky'], 'STOMP 1.2 escapes round-trip');
    assert.equal(m.headers['content-type'], 'application/json;charset=utf-8');
    assert.equal(m.body, '{"a":1}');
  });

  it('GivesTwoSubscriptionsOfOneConnectionACopyEach', T, async () => {
    const { client: sub } = await connect();
    const { client: pub } = await connect();
    const a = await subscribe(sub, '/topic/e2e.twice');
    const b = await subscribe(sub, '/topic/e2e.twice');
    assert.notEqual(a.subscription.id, b.subscription.id);
    pub.publish({ destination: '/topic/e2e.twice', body: 'one' });
    const [ma, mb] = await Promise.all([a.take(), b.take()]);
    assert.equal(ma.body, 'one');
    assert.equal(mb.body, 'one');
    assert.equal(ma.headers.subscription, a.subscription.id);
    assert.equal(mb.headers.subscription, b.subscription.id);
    // Exactly one copy each.
    await publishConfirmed(pub, { destination: '/topic/e2e.twice', body: 'two' });
    assert.equal((await a.take()).body, 'two');
    assert.equal((await b.take()).body, 'two');
    assert.equal(a.all.length, 2);
    assert.equal(b.all.length, 2);
  });

  it('KeepsPerPublisherOrderOnATopic', T, async () => {
    const { client: sub } = await connect();
    const { client: pub } = await connect();
    const inbox = await subscribe(sub, '/topic/e2e.order');
    const n = 200;
    for (let i = 0; i < n; i += 1) pub.publish({ destination: '/topic/e2e.order', body: String(i) });
    const got = await inbox.takeN(n, scaled(10_000));
    assert.deepEqual(got.map((m) => Number(m.body)), [...Array(n).keys()]);
  });

  it('SharesAQueueRoundRobinBetweenTwoConsumers', T, async () => {
    const { client: c1 } = await connect();
    const { client: c2 } = await connect();
    const { client: pub } = await connect();
    const q1 = await subscribe(c1, '/queue/e2e.rr');
    const q2 = await subscribe(c2, '/queue/e2e.rr');
    const n = 10;
    for (let i = 0; i < n; i += 1) pub.publish({ destination: '/queue/e2e.rr', body: String(i) });
    await publishConfirmed(pub, { destination: '/topic/e2e.rr.sync', body: '' });
    const deadline = Date.now() + scaled(5000);
    while (q1.all.length + q2.all.length < n && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
    }
    const bodies = [...q1.all, ...q2.all].map((m) => Number(m.body)).sort((x, y) => x - y);
    assert.deepEqual(bodies, [...Array(n).keys()], 'every queued message delivered exactly once');
    assert.equal(q1.all.length, n / 2, `round-robin: consumer 1 got ${q1.all.map((m) => m.body)}`);
    assert.equal(q2.all.length, n / 2, `round-robin: consumer 2 got ${q2.all.map((m) => m.body)}`);
  });

  it('RejectsADestinationOutsideTopicAndQueueWithAnError', T, async () => {
    const { client } = await connect();
    client.publish({ destination: '/elsewhere/e2e', body: 'nope' });
    const err = await client.e2e.errors.take();
    assert.equal(err.command, 'ERROR');
    assert.ok(err.headers.message, 'ERROR has a message header');
    assert.match(`${err.headers.message}\n${err.body}`, /\/elsewhere\/e2e/, 'the ERROR names the destination');
    const closed = await client.e2e.closes.take();
    assert.ok(closed, 'the broker closes the connection after ERROR');
  });

  it('ReassemblesFramesStompJsSplitsLikeForSpring', T, async () => {
    // stomp.js's splitLargeFrames cuts a frame into WebSocket messages of
    // maxWebSocketChunkSize bytes, for servers such as Spring that need it.
    const { client: sub } = await connect();
    const { client: pub } = await connect({ splitLargeFrames: true, maxWebSocketChunkSize: 8 * 1024 });
    const inbox = await subscribe(sub, '/topic/e2e.split');
    const body = 'abcdefghij'.repeat(10_000);  // 100,000 bytes: 13 WebSocket messages
    pub.publish({ destination: '/topic/e2e.split', body });
    const m = await inbox.take();
    assert.equal(m.body.length, body.length);
    assert.equal(m.body, body);
  });
});

describe('stomp.js heart-beats', () => {
  let broker;
  let client;
  const intervalMs = 200;

  before(async () => {
    broker = await startBroker({
      // The client's own intervals are honoured once the floor allows them (issue 13).
      config: { heartbeat: { min_interval_ms: 100, grace_factor: 2.0 } },
    });
  });
  after(async () => {
    await shutdown(client);
    const exit = await broker.dispose();
    assert.deepEqual([exit.code, exit.graceful], [0, true], `stompd did not exit cleanly\n${broker.log()}`);
  });

  it('ExchangesHeartBeatsAndStaysConnectedAcrossManyIntervals', T, async () => {
    ({ client } = await connectClient(broker.wsUrl, {
      heartbeatIncoming: intervalMs,
      heartbeatOutgoing: intervalMs,
    }));
    const state = client.e2e;
    const connected = state.connects.all[0];
    const [sx, sy] = connected.headers['heart-beat'].split(',').map(Number);
    // Exactly what stomp.js asked for, not the broker's 10 s default offer.
    assert.equal(sx, intervalMs, `broker sends every ${intervalMs} ms: ${sx}`);
    assert.equal(sy, intervalMs, `broker wants to hear every ${intervalMs} ms: ${sy}`);

    // Ten intervals of silence apart from heart-beats.
    await new Promise((r) => setTimeout(r, 10 * intervalMs));
    assert.equal(state.closes.all.length, 0, `connection closed: ${JSON.stringify(state.closes.all)}\n${broker.log()}`);
    assert.equal(state.heartbeatsLost, 0, 'stomp.js never missed the broker\'s heart-beats');
    assert.ok(state.heartbeats >= 5, `expected at least 5 heart-beats from the broker, got ${state.heartbeats}`);
    assert.ok(client.connected);

    // And the connection still carries messages.
    const inbox = await subscribe(client, '/topic/e2e.hb');
    client.publish({ destination: '/topic/e2e.hb', body: 'alive' });
    assert.equal((await inbox.take()).body, 'alive');
  });
});

describe('stomp.js reconnect', () => {
  let broker;
  let client;

  after(async () => {
    await shutdown(client);
    if (broker) await broker.dispose();
  });

  it('ReconnectsAndResubscribesAfterTheBrokerRestarts', T, async () => {
    broker = await startBroker();
    const wsPort = broker.wsPort;
    const inboxes = [];
    client = makeClient(broker.wsUrl, {
      reconnectDelay: 200,
      // Subscriptions belong in onConnect: stomp.js runs it again after every reconnect.
      onConnect: () => {
        const inbox = new Inbox('MESSAGE after reconnect');
        inboxes.push(inbox);
        client.subscribe('/topic/e2e.reconnect', (m) => inbox.put(m), { receipt: `resub-${inboxes.length}` });
      },
    });
    const subscribed = [];
    client.onUnhandledReceipt = (f) => subscribed.push(f.headers['receipt-id']);
    client.activate();
    await client.e2e.connects.take(scaled(10_000));

    const first = await broker.stop();
    assert.deepEqual([first.code, first.graceful], [0, true], `first stompd did not exit cleanly\n${broker.log()}`);
    await client.e2e.closes.take();

    // Same port, same data directory: what a restart in production looks like.
    const dataDir = broker.dataDir;
    broker = await startBroker({ ws: `127.0.0.1:${wsPort}`, dataDir });
    await client.e2e.connects.take(scaled(10_000));
    await waitFor(() => subscribed.includes('resub-2'), scaled(5000), 'RECEIPT of the re-SUBSCRIBE');

    const { client: pub } = await connectClient(broker.wsUrl);
    pub.publish({ destination: '/topic/e2e.reconnect', body: 'after restart' });
    const m = await inboxes[1].take();
    assert.equal(m.body, 'after restart');
    await shutdown(pub);
  });
});
