// Spring's StompBrokerRelayMessageHandler ("enableStompBrokerRelay") against stompd over plain
// TCP, byte for byte. Every frame below is what the relay writes, derived from
// spring-projects/spring-framework (6.x):
//
//   StompBrokerRelayMessageHandler.startInternal()            the "system" session CONNECT
//   StompBrokerRelayMessageHandler.handleMessageInternal()    a client session's CONNECT:
//       the client's own headers, then setLogin(clientLogin), setPasscode(clientPasscode),
//       setHost(virtualHost); every other client frame forwarded as decoded
//   StompBrokerRelayMessageHandler.RelayConnectionHandler.afterDisconnectSent()
//       DISCONNECT without receipt: the relay closes the TCP connection right after it
//   StompBrokerRelayMessageHandler.SystemSessionConnectionHandler.initHeartbeats()
//       and sendSystemSubscriptions()
//   StompEncoder.encode()/writeHeaders()    header order = insertion order of the native
//       headers; values escaped except in CONNECT/STOMP/CONNECTED; for SEND/MESSAGE/ERROR
//       any content-length header is dropped and "content-length:<payload length>" appended
//       last (even for an empty payload)
//   StompHeaderAccessor.setPasscode()       the native value becomes "PROTECTED"; the encoder
//       writes the real passcode in its place
//   SimpMessagingTemplate.processHeadersToSend() + StompHeaderAccessor.wrap()
//       an application's convertAndSend(destination, payload, headers): custom headers
//       first, then destination, then content-type
//
// Relay settings used: systemLogin/systemPasscode/clientLogin/clientPasscode "guest" (the
// defaults), virtualHost "localhost" (setVirtualHost, which adds the host header).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { guestUser, scaled, shippedConfig, startBroker } from '../lib/broker.mjs';
import { RelayTcpConnection } from './spring-clients.mjs';
import { getHeartbeat, NativeHeaders, stompEncode } from './spring-codec.mjs';

const T = { timeout: scaled(30_000) };
const EMPTY = Buffer.alloc(0);

// StompBrokerRelayMessageHandler.startInternal():
//   accessor.setAcceptVersion("1.1,1.2"); setLogin(systemLogin); setPasscode(systemPasscode);
//   setHeartbeat(systemHeartbeatSendInterval, systemHeartbeatReceiveInterval);
//   if (virtualHost != null) setHost(virtualHost);
function systemConnect({ heartbeat = [10000, 10000], host = 'localhost' } = {}) {
  const h = new NativeHeaders()
    .set('accept-version', '1.1,1.2')
    .set('login', 'guest')
    .set('passcode', 'PROTECTED')
    .set('heart-beat', `${heartbeat[0]},${heartbeat[1]}`);
  if (host) h.set('host', host);
  return stompEncode('CONNECT', h, EMPTY, { passcode: 'guest' });
}

// A WebSocketStompClient's CONNECT (DefaultStompSession.afterConnected(): its connect headers,
// i.e. heart-beat from StompClientSupport.processConnectHeaders(), then accept-version) as
// StompSubProtocolHandler decodes it, after the relay's setLogin/setPasscode/setHost.
function clientConnectAsForwarded() {
  const h = new NativeHeaders()
    .set('heart-beat', '10000,10000')
    .set('accept-version', '1.1,1.2')
    .set('login', 'guest')
    .set('passcode', 'PROTECTED')
    .set('host', 'localhost');
  return stompEncode('CONNECT', h, EMPTY, { passcode: 'guest' });
}

describe('Spring broker relay over TCP', () => {
  let broker;
  const conns = [];
  const open = async () => {
    const c = await RelayTcpConnection.open(broker.tcpPort);
    conns.push(c);
    return c;
  };

  // The shipped config as it is: the relay's default guest/guest login works out of the box.
  before(async () => { broker = await startBroker({ configFile: shippedConfig }); });
  after(async () => {
    for (const c of conns) c.close();
    const exit = await broker.dispose();
    assert.deepEqual([exit.code, exit.graceful], [0, true], `stompd did not exit cleanly\n${broker.log()}`);
  });

  it('AcceptsTheSystemSessionConnectExactlyAsTheRelayWritesIt', T, async () => {
    const bytes = systemConnect();
    assert.equal(bytes.toString('latin1'),
                 'CONNECT\naccept-version:1.1,1.2\nlogin:guest\npasscode:guest\nheart-beat:10000,10000\n' +
                 'host:localhost\n\n\0');
    const sys = await open();
    await sys.write(bytes);
    const connected = await sys.next('CONNECTED');
    assert.equal(connected.headers.first('version'), '1.2');
    assert.equal(connected.payload.length, 0);
    // RelayConnectionHandler.initHeartbeats() parses it with Long.parseLong: no spaces.
    assert.deepEqual(getHeartbeat(connected.headers), [10000, 10000]);
  });

  it('RoundTripsAClientSessionThroughTheRelay', T, async () => {
    // The system session, with one system subscription (setSystemSubscriptions).
    const sys = await open();
    await sys.write(systemConnect());
    await sys.next('CONNECTED');

    // One more TCP connection for the WebSocket client's session.
    const bytes = clientConnectAsForwarded();
    assert.equal(bytes.toString('latin1'),
                 'CONNECT\nheart-beat:10000,10000\naccept-version:1.1,1.2\nlogin:guest\npasscode:guest\n' +
                 'host:localhost\n\n\0');
    const client = await open();
    await client.write(bytes);
    const connected = await client.next('CONNECTED');
    assert.equal(connected.headers.first('version'), '1.2');

    // DefaultStompSession.subscribe() with autoReceipt: destination, id, receipt.
    await client.send('SUBSCRIBE', new NativeHeaders()
      .set('destination', '/topic/relay.prices').set('id', '0').set('receipt', '0'));
    assert.equal((await client.next('RECEIPT')).headers.first('receipt-id'), '0');

    // The application publishes through the system session:
    // convertAndSend("/topic/relay.prices", "42.5", Map.of("x-quote-time", "12:30:00")).
    const appSend = stompEncode('SEND', new NativeHeaders()
      .set('x-quote-time', '12:30:00')
      .set('destination', '/topic/relay.prices')
      .set('content-type', 'text/plain;charset=UTF-8'), Buffer.from('42.5'));
    assert.equal(appSend.toString('latin1'),
                 'SEND\nx-quote-time:12\\c30\\c00\ndestination:/topic/relay.prices\n' +
                 'content-type:text/plain;charset=UTF-8\ncontent-length:4\n\n42.5\0');
    await sys.write(appSend);

    const m = await client.next('MESSAGE');
    assert.equal(m.headers.first('subscription'), '0');
    assert.equal(m.headers.first('destination'), '/topic/relay.prices');
    assert.equal(m.headers.first('x-quote-time'), '12:30:00', 'escaped value decoded back by StompDecoder');
    assert.equal(m.headers.first('content-type'), 'text/plain;charset=UTF-8');
    assert.ok(m.headers.first('message-id'));
    assert.equal(m.payload.toString(), '42.5');

    // The client's own SEND (DefaultStompSession.send() with autoReceipt), forwarded.
    const clientSend = stompEncode('SEND', new NativeHeaders()
      .set('destination', '/topic/relay.prices').set('receipt', '1')
      .set('content-length', '5'), Buffer.from('hello'));
    assert.equal(clientSend.toString('latin1'),
                 'SEND\ndestination:/topic/relay.prices\nreceipt:1\ncontent-length:5\n\nhello\0');
    await client.write(clientSend);
    const frames = [await client.next(), await client.next()];
    const receipt = frames.find((f) => f.command === 'RECEIPT');
    const echo = frames.find((f) => f.command === 'MESSAGE');
    assert.ok(receipt && echo, `expected RECEIPT and MESSAGE, got ${frames.map((f) => f.command)}`);
    assert.equal(receipt.headers.first('receipt-id'), '1');
    assert.equal(echo.payload.toString(), 'hello');

    // An empty SEND still carries content-length:0 (StompEncoder.writeHeaders()).
    await sys.send('SEND', new NativeHeaders().set('destination', '/topic/relay.prices'), EMPTY);
    const empty = await client.next('MESSAGE');
    assert.equal(empty.payload.length, 0);

    // DefaultSubscription.unsubscribe(): UNSUBSCRIBE with id only.
    await client.send('UNSUBSCRIBE', new NativeHeaders().set('id', '0').set('receipt', '2'));
    assert.equal((await client.next('RECEIPT')).headers.first('receipt-id'), '2');

    // The browser goes away: StompSubProtocolHandler.afterSessionEnded() sends DISCONNECT with
    // no header; RelayConnectionHandler.afterDisconnectSent() closes the TCP connection at once.
    await client.write(stompEncode('DISCONNECT', new NativeHeaders(), EMPTY));
    client.close();

    // The broker carries on for everybody else.
    const other = await open();
    await other.write(clientConnectAsForwarded());
    await other.next('CONNECTED');
    await other.send('SUBSCRIBE', new NativeHeaders()
      .set('destination', '/topic/relay.prices').set('id', '0').set('receipt', '0'));
    await other.next('RECEIPT');
    await sys.send('SEND', new NativeHeaders().set('destination', '/topic/relay.prices'), Buffer.from('still up'));
    assert.equal((await other.next('MESSAGE')).payload.toString(), 'still up');
  });

  it('DeliversToASystemSubscription', T, async () => {
    const sys = await open();
    await sys.write(systemConnect());
    await sys.next('CONNECTED');
    // SystemSessionConnectionHandler.sendSystemSubscriptions(): setSubscriptionId("0") then
    // setDestination(), so id comes first; no receipt.
    const subscribe = stompEncode('SUBSCRIBE', new NativeHeaders().set('id', '0').set('destination', '/topic/relay.system'), EMPTY);
    assert.equal(subscribe.toString('latin1'), 'SUBSCRIBE\nid:0\ndestination:/topic/relay.system\n\n\0');
    await sys.write(subscribe);
    // No receipt to wait for, as in Spring: publish from a second connection until it arrives.
    const pub = await open();
    await pub.write(clientConnectAsForwarded());
    await pub.next('CONNECTED');
    let m;
    for (let attempt = 0; !m && attempt < 50; attempt += 1) {
      await pub.send('SEND', new NativeHeaders().set('destination', '/topic/relay.system').set('receipt', `p${attempt}`), Buffer.from('sys'));
      await pub.next('RECEIPT');
      m = await sys.next('MESSAGE', scaled(100)).catch(() => undefined);
    }
    assert.ok(m, 'the system subscription never received a message');
    assert.equal(m.headers.first('destination'), '/topic/relay.system');
    assert.equal(m.payload.toString(), 'sys');
  });
});

describe('Spring broker relay heart-beats', () => {
  let broker;
  const conns = [];
  const intervalMs = 200;

  before(async () => {
    broker = await startBroker({
      // The relay's own 200 ms intervals are honoured once the floor allows them.
      config: { auth: { users: [guestUser] }, heartbeat: { min_interval_ms: 100, grace_factor: 2.0 } },
    });
  });
  after(async () => {
    for (const c of conns) c.close();
    const exit = await broker.dispose();
    assert.deepEqual([exit.code, exit.graceful], [0, true], `stompd did not exit cleanly\n${broker.log()}`);
  });

  it('ExchangesNewlineHeartBeatsWithTheSystemSession', T, async () => {
    // setSystemHeartbeatSendInterval(200) and setSystemHeartbeatReceiveInterval(200): the
    // defaults (10000) would make this test take half a minute.
    const sys = await RelayTcpConnection.open(broker.tcpPort);
    conns.push(sys);
    await sys.write(systemConnect({ heartbeat: [intervalMs, intervalMs] }));
    const connected = await sys.next('CONNECTED');
    const { writeIntervalMs, readTimeoutMs } = sys.initHeartbeats([intervalMs, intervalMs], connected);
    assert.equal(writeIntervalMs, intervalMs, `CONNECTED heart-beat ${connected.headers.first('heart-beat')}`);
    assert.equal(readTimeoutMs, 3 * intervalMs);

    // Ten intervals with nothing but heart-beats both ways (bounded wait: the point).
    await new Promise((r) => setTimeout(r, 10 * intervalMs));
    assert.equal(sys.closed, false, `the broker closed the connection despite Spring's heart-beats\n${broker.log()}`);
    assert.ok(sys.heartbeatsSent >= 5, `sent ${sys.heartbeatsSent} heart-beats`);
    assert.ok(sys.heartbeats >= 5, `expected >= 5 "\\n" heart-beats from the broker, got ${sys.heartbeats}`);
    // ReactorNettyTcpConnection.onReadInactivity(): more silence than this fails the session
    // with "No messages received in 600 ms".
    assert.ok(sys.maxReadGapMs <= readTimeoutMs,
              `longest silence from the broker ${sys.maxReadGapMs} ms > Spring's ${readTimeoutMs} ms`);

    // Still a working session: a system subscription and a message through it.
    await sys.send('SUBSCRIBE', new NativeHeaders().set('id', '0').set('destination', '/topic/relay.hb'), EMPTY);
    await sys.send('SEND', new NativeHeaders().set('destination', '/topic/relay.hb').set('receipt', 'after-hb'), Buffer.from('beat'));
    const frames = [await sys.next(), await sys.next()];
    assert.deepEqual(frames.map((f) => f.command).sort(), ['MESSAGE', 'RECEIPT']);
  });
});
