// Spring's WebSocketStompClient against stompd's WebSocket listener, byte for byte. Frames and
// their WebSocket framing are derived from spring-projects/spring-framework (6.2):
//
//   WebSocketStompClient: DEFAULT_MESSAGE_MAX_SIZE = 64 * 1024 (in- and outbound);
//     StompWebSocketMessageCodec.encode(): SplittingStompEncoder cuts an encoded frame larger
//     than outboundMessageSizeLimit into 64 KiB WebSocket messages, binary only for a
//     non-empty application/octet-stream payload, text otherwise;
//     StompWebSocketMessageCodec.decode(): every WebSocket message into BufferingStompDecoder,
//     which throws once more than inboundMessageSizeLimit bytes are buffered - a single
//     WebSocket message included - so the tests raise it with setInboundMessageSizeLimit() to
//     receive their large frames, as an application doing this must.
//   WebSocketStompClient(WebSocketClient) sets defaultHeartbeat to 0,0; setTaskScheduler()
//     (needed for receipts) sets it back to 10000,10000.
//   DefaultStompSession.afterConnected(): CONNECT = connect headers (heart-beat, from
//     StompClientSupport.processConnectHeaders()) then accept-version:1.1,1.2.
//   DefaultStompSession.subscribe()/send() with setAutoReceipt(true): ids from
//     subscriptionIndex and receipts from receiptIndex, both counting from 0;
//     header order destination, (id), (content-type set by the caller), receipt.
//   DefaultStompSession.disconnect(): DISCONNECT with no headers, then the WebSocket closes.
//   Subprotocols: WebSocketStompClient adds none itself; applications pass the list Spring's
//     server side speaks, StompSubProtocolHandler.getSupportedProtocols():
//     "v10.stomp", "v11.stomp", "v12.stomp", via WebSocketHttpHeaders.setSecWebSocketProtocol().

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';

import { scaled, startBroker } from '../lib/broker.mjs';
import { RawTcpClient } from '../lib/stomp-raw.mjs';
import { DEFAULT_MESSAGE_MAX_SIZE, SpringWsSession } from './spring-clients.mjs';
import { getHeartbeat, NativeHeaders, stompEncode } from './spring-codec.mjs';

const T = { timeout: scaled(30_000) };
const springProtocols = ['v10.stomp', 'v11.stomp', 'v12.stomp'];
const inboundMessageSizeLimit = 512 * 1024;  // setInboundMessageSizeLimit(512 * 1024)

// DefaultStompSession.afterConnected() with connect heart-beat [cx, cy].
function springConnect(heartbeat = [10000, 10000]) {
  return ['CONNECT', new NativeHeaders().set('heart-beat', heartbeat.join(',')).set('accept-version', '1.1,1.2')];
}

async function openSession(url) {
  const s = await SpringWsSession.open(url, { protocols: springProtocols, inboundMessageSizeLimit });
  const [command, headers] = springConnect();
  const frames = await s.send(command, headers);
  assert.equal(frames.length, 1);
  assert.equal(frames[0].toString('latin1'), 'CONNECT\nheart-beat:10000,10000\naccept-version:1.1,1.2\n\n\0');
  const connected = await s.next('CONNECTED');
  return { s, connected };
}

describe('Spring WebSocketStompClient', () => {
  let broker;
  const sessions = [];

  before(async () => { broker = await startBroker(); });
  after(async () => {
    for (const s of sessions) s.close();
    const exit = await broker.dispose();
    assert.deepEqual([exit.code, exit.graceful], [0, true], `stompd did not exit cleanly\n${broker.log()}`);
  });

  it('ConnectsWithSpringsSubprotocolsAndConnectFrame', T, async () => {
    const { s, connected } = await openSession(broker.wsUrl);
    sessions.push(s);
    assert.ok(springProtocols.includes(s.protocol), `chosen subprotocol ${JSON.stringify(s.protocol)}`);
    assert.equal(connected.headers.first('version'), '1.2');
    const [sx, sy] = getHeartbeat(connected.headers);  // throws like Long.parseLong would
    assert.ok(sx >= 0 && sy >= 0);
  });

  it('AcceptsTheSubprotocolHeaderWrittenAsACommaSpaceList', T, async () => {
    // The same offer as one header line "v10.stomp, v11.stomp, v12.stomp" (RFC 6455 4.1 allows
    // optional whitespace in the list); the broker must pick exactly one token.
    const sock = net.connect({ port: broker.wsPort, host: '127.0.0.1' });
    await new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
    sock.write(['GET /ws HTTP/1.1', `Host: 127.0.0.1:${broker.wsPort}`, 'Upgrade: websocket',
                'Connection: Upgrade', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
                'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Protocol: v10.stomp, v11.stomp, v12.stomp',
                '', ''].join('\r\n'));
    let head = '';
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no handshake answer: ${JSON.stringify(head)}`)), scaled(5000));
      sock.on('data', (d) => {
        head += d.toString('latin1');
        if (head.includes('\r\n\r\n')) { clearTimeout(timer); resolve(); }
      });
    });
    sock.destroy();
    assert.match(head, /^HTTP\/1\.1 101 /);
    assert.match(head, /\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/i);
    const m = /\r\nsec-websocket-protocol: *([^\r]*)\r\n/i.exec(head);
    assert.ok(m, `no Sec-WebSocket-Protocol in ${JSON.stringify(head)}`);
    assert.ok(springProtocols.includes(m[1].trim()), `chose ${JSON.stringify(m[1])}`);
  });

  it('ReassemblesAFrameSplitIntoSpringsOutboundWebSocketMessages', T, async () => {
    const { s } = await openSession(broker.wsUrl);
    sessions.push(s);

    // session.subscribe("/topic/spring.large", handler)
    const id = s.nextSubscriptionId();
    const subReceipt = s.nextReceipt();
    const [subscribe] = await s.send('SUBSCRIBE', new NativeHeaders()
      .set('destination', '/topic/spring.large').set('id', id).set('receipt', subReceipt));
    assert.equal(subscribe.toString('latin1'), 'SUBSCRIBE\ndestination:/topic/spring.large\nid:0\nreceipt:0\n\n\0');
    assert.equal((await s.next('RECEIPT')).headers.first('receipt-id'), '0');

    // headers.setDestination(); headers.setContentType(TEXT_PLAIN); session.send(headers, bytes)
    // with 150,000 bytes of text: 3 text WebSocket messages (65536 + 65536 + the rest).
    const body = Buffer.from('0123456789abcdef'.repeat(9375));  // 150,000 bytes
    const sendReceipt = s.nextReceipt();
    const pieces = await s.send('SEND', new NativeHeaders()
      .set('destination', '/topic/spring.large').set('content-type', 'text/plain;charset=UTF-8')
      .set('receipt', sendReceipt), body);
    const whole = Buffer.concat(pieces);
    assert.ok(whole.toString('latin1').startsWith('SEND\ndestination:/topic/spring.large\n' +
      'content-type:text/plain;charset=UTF-8\nreceipt:1\ncontent-length:150000\n\n0123'));
    assert.deepEqual(pieces.map((p) => p.length), [DEFAULT_MESSAGE_MAX_SIZE, DEFAULT_MESSAGE_MAX_SIZE,
                                                   whole.length - 2 * DEFAULT_MESSAGE_MAX_SIZE]);
    assert.ok(s.sentMessages.slice(-3).every((m) => !m.binary));

    const frames = [await s.next(), await s.next()];
    const receipt = frames.find((f) => f.command === 'RECEIPT');
    const message = frames.find((f) => f.command === 'MESSAGE');
    assert.ok(receipt && message, `expected RECEIPT and MESSAGE, got ${frames.map((f) => f.command)}`);
    assert.equal(receipt.headers.first('receipt-id'), '1');
    assert.equal(message.headers.first('subscription'), '0');
    assert.equal(message.headers.first('destination'), '/topic/spring.large');
    assert.equal(message.headers.first('content-type'), 'text/plain;charset=UTF-8');
    assert.equal(message.payload.length, body.length);
    assert.ok(message.payload.equals(body), 'MESSAGE body as StompDecoder reads it');

    // session.disconnect(): DISCONNECT without receipt, then the WebSocket is closed.
    const [disconnect] = await s.send('DISCONNECT', new NativeHeaders());
    assert.equal(disconnect.toString('latin1'), 'DISCONNECT\n\n\0');
    s.close();
  });

  it('ReassemblesABinaryFrameSplitIntoBinaryWebSocketMessages', T, async () => {
    const { s } = await openSession(broker.wsUrl);
    sessions.push(s);
    const id = s.nextSubscriptionId();
    await s.send('SUBSCRIBE', new NativeHeaders()
      .set('destination', '/topic/spring.binary').set('id', id).set('receipt', s.nextReceipt()));
    await s.next('RECEIPT');
    const body = Buffer.alloc(100_000);
    for (let i = 0; i < body.length; i += 1) body[i] = (i * 7919) % 256;  // NULs and non-UTF-8
    const pieces = await s.send('SEND', new NativeHeaders()
      .set('destination', '/topic/spring.binary').set('content-type', 'application/octet-stream')
      .set('receipt', s.nextReceipt()), body);
    assert.equal(pieces.length, 2);
    assert.ok(s.sentMessages.slice(-2).every((m) => m.binary), 'octet-stream goes out as binary messages');
    const frames = [await s.next(), await s.next()];
    const message = frames.find((f) => f.command === 'MESSAGE');
    assert.ok(message, `expected a MESSAGE, got ${frames.map((f) => f.command)}`);
    assert.equal(message.headers.first('content-length'), String(body.length));
    assert.ok(message.payload.equals(body), 'binary body intact');
  });

  it('StaysWithinSpringsDefaultInboundLimitWhenMessagesArriveInABurst', T, async () => {
    // A session left at DEFAULT_MESSAGE_MAX_SIZE inbound: every MESSAGE below fits on its own,
    // but BufferingStompDecoder.checkBufferLimits() counts whole WebSocket messages, so a broker
    // that packs several frames into one WebSocket message past 64 KiB breaks the session.
    const s = await SpringWsSession.open(broker.wsUrl, { protocols: springProtocols });
    sessions.push(s);
    const [command, headers] = springConnect();
    await s.send(command, headers);
    await s.next('CONNECTED');
    await s.send('SUBSCRIBE', new NativeHeaders()
      .set('destination', '/topic/spring.burst').set('id', s.nextSubscriptionId()).set('receipt', s.nextReceipt()));
    await s.next('RECEIPT');
    const pub = await RawTcpClient.open(broker.tcpPort);
    await pub.connect();
    const body = Buffer.alloc(24 * 1024, 'b');  // three coalesced would pass 64 KiB
    const n = 20;
    const burst = [];
    for (let i = 0; i < n; i += 1) {
      burst.push(stompEncode('SEND', new NativeHeaders().set('destination', '/topic/spring.burst'), body));
    }
    await pub.send(Buffer.concat(burst));  // all at once, so they queue up for the subscriber
    for (let i = 0; i < n; i += 1) {
      const m = await s.next('MESSAGE', scaled(10_000));
      assert.equal(m.payload.length, body.length);
    }
    const biggest = Math.max(...s.receivedMessages.map((m) => m.bytes));
    assert.ok(biggest <= DEFAULT_MESSAGE_MAX_SIZE, `largest WebSocket message ${biggest} bytes`);
    pub.close();
  });

  it('DeliversAFrameOfExactlyTheOutboundLimitUnsplit', T, async () => {
    // SplittingStompEncoder.encode(): length <= bufferSizeLimit stays one message.
    const { s } = await openSession(broker.wsUrl);
    sessions.push(s);
    await s.send('SUBSCRIBE', new NativeHeaders()
      .set('destination', '/topic/spring.edge').set('id', s.nextSubscriptionId()).set('receipt', s.nextReceipt()));
    await s.next('RECEIPT');
    const headers = new NativeHeaders().set('destination', '/topic/spring.edge').set('receipt', s.nextReceipt());
    const overhead = stompEncode('SEND', headers, Buffer.alloc(0)).length;
    // content-length grows by digits; solve for a frame of exactly 65536 bytes.
    let n = DEFAULT_MESSAGE_MAX_SIZE - overhead;
    while (stompEncode('SEND', headers, Buffer.alloc(n)).length > DEFAULT_MESSAGE_MAX_SIZE) n -= 1;
    const body = Buffer.alloc(n, 'x');
    const pieces = await s.send('SEND', headers, body);
    assert.equal(pieces.length, 1);
    assert.equal(pieces[0].length, DEFAULT_MESSAGE_MAX_SIZE);
    const frames = [await s.next(), await s.next()];
    const message = frames.find((f) => f.command === 'MESSAGE');
    assert.ok(message && message.payload.equals(body));
  });
});

describe('Spring WebSocketStompClient heart-beats', () => {
  let broker;
  let s;
  const intervalMs = 200;

  before(async () => {
    broker = await startBroker({
      // The client's own intervals are honoured once the floor allows them (issue 13).
      config: { heartbeat: { min_interval_ms: 100, grace_factor: 2.0 } },
    });
  });
  after(async () => {
    if (s) s.close();
    const exit = await broker.dispose();
    assert.deepEqual([exit.code, exit.graceful], [0, true], `stompd did not exit cleanly\n${broker.log()}`);
  });

  it('KeepsTheSessionAliveWithTextMessageHeartBeats', T, async () => {
    // stompClient.setDefaultHeartbeat(new long[] {200, 200})
    s = await SpringWsSession.open(broker.wsUrl, { protocols: springProtocols, inboundMessageSizeLimit });
    const [command, headers] = springConnect([intervalMs, intervalMs]);
    const [connect] = await s.send(command, headers);
    assert.equal(connect.toString('latin1'), 'CONNECT\nheart-beat:200,200\naccept-version:1.1,1.2\n\n\0');
    const connected = await s.next('CONNECTED');
    const { writeIntervalMs, readTimeoutMs } = s.initHeartbeatTasks([intervalMs, intervalMs], connected);
    assert.equal(writeIntervalMs, intervalMs, `CONNECTED heart-beat ${connected.headers.first('heart-beat')}`);
    assert.equal(readTimeoutMs, 3 * intervalMs);

    await new Promise((r) => setTimeout(r, 10 * intervalMs));
    assert.equal(s.closed, false, `closed: ${JSON.stringify(s.closed)}\n${broker.log()}`);
    assert.notEqual(s.serverWentQuiet, true, 'ReadInactivityTask: "Server has gone quiet"');
    assert.ok(s.heartbeatsSent >= 4, `sent ${s.heartbeatsSent} "\\n" text messages`);
    assert.ok(s.heartbeats >= 5, `expected >= 5 heart-beats from the broker, got ${s.heartbeats}`);

    await s.send('SUBSCRIBE', new NativeHeaders()
      .set('destination', '/topic/spring.hb').set('id', s.nextSubscriptionId()).set('receipt', s.nextReceipt()));
    assert.equal((await s.next('RECEIPT')).headers.first('receipt-id'), '0');
  });
});
