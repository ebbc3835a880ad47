// WebSocket behaviour no STOMP library lets a test control: frames split across WebSocket
// messages or packed several to one, subprotocol negotiation, pings, binary messages, and the
// protocol errors the broker must answer with ERROR and a close.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { scaled, shippedConfig, startBroker } from '../lib/broker.mjs';
import { encodeFrame, RawWsClient } from '../lib/stomp-raw.mjs';

const T = { timeout: scaled(30_000) };
const stompProtocols = ['v12.stomp', 'v11.stomp', 'v10.stomp'];

describe('raw WebSocket', () => {
  let broker;
  const sockets = [];
  const open = async (protocols = stompProtocols) => {
    const c = await RawWsClient.open(broker.wsUrl, protocols ?? undefined);
    sockets.push(c);
    return c;
  };

  // The shipped config: the defaults plus the guest/guest user a 1.0 client logs in as below.
  before(async () => { broker = await startBroker({ configFile: shippedConfig }); });
  after(async () => {
    for (const c of sockets) c.close();
    const exit = await broker.dispose();
    assert.deepEqual([exit.code, exit.graceful], [0, true], `stompd did not exit cleanly\n${broker.log()}`);
  });

  it('ReassemblesAFrameSplitAcrossWebSocketMessages', T, async () => {
    const c = await open();
    // CONNECT cut in the middle of its command, of a header name and before the NUL.
    const connect = encodeFrame('CONNECT', { 'accept-version': '1.2', host: 'localhost' });
    await c.send(connect.subarray(0, 3));
    await c.send(connect.subarray(3, 15));
    await c.send(connect.subarray(15, connect.length - 1));
    await c.send(connect.subarray(connect.length - 1));
    await c.expectFrame('CONNECTED');

    await c.sendFrame('SUBSCRIBE', { id: 's1', destination: '/topic/e2e.split', receipt: 'r-sub' });
    assert.equal((await c.expectFrame('RECEIPT')).headers['receipt-id'], 'r-sub');

    // A SEND with a content-length body fed one byte per WebSocket message.
    const send = encodeFrame('SEND', { destination: '/topic/e2e.split', 'content-length': '11' }, 'hello\0world');
    for (let i = 0; i < send.length; i += 1) await c.send(send.subarray(i, i + 1));
    const m = await c.expectFrame('MESSAGE');
    assert.equal(m.headers.subscription, 's1');
    assert.deepEqual(m.body, Buffer.from('hello\0world'));
  });

  it('ProcessesSeveralFramesInOneWebSocketMessage', T, async () => {
    const c = await open();
    const batch = Buffer.concat([
      encodeFrame('CONNECT', { 'accept-version': '1.2', host: 'localhost' }),
      encodeFrame('SUBSCRIBE', { id: 'a', destination: '/topic/e2e.batch', receipt: 'r1' }),
      Buffer.from('\n'),  // a heart-beat EOL between frames is legal
      encodeFrame('SEND', { destination: '/topic/e2e.batch', receipt: 'r2' }, 'first'),
      encodeFrame('SEND', { destination: '/topic/e2e.batch' }, 'second'),
      encodeFrame('SEND', { destination: '/topic/e2e.batch', receipt: 'r3' }, 'third'),
    ]);
    await c.send(batch);
    await c.expectFrame('CONNECTED');
    const frames = [];
    for (let i = 0; i < 6; i += 1) frames.push(await c.nextFrame());
    const receipts = frames.filter((f) => f.command === 'RECEIPT').map((f) => f.headers['receipt-id']);
    const bodies = frames.filter((f) => f.command === 'MESSAGE').map((f) => f.text);
    assert.deepEqual(receipts, ['r1', 'r2', 'r3']);
    assert.deepEqual(bodies, ['first', 'second', 'third']);
    // RECEIPT r1 (the SUBSCRIBE) must come before the first MESSAGE it enables.
    assert.equal(frames[0].command, 'RECEIPT');
  });

  it('EscapesHeaderValuesOfMessageFramesByteExactly', T, async () => {
    // STOMP 1.2 "Value Encoding": \\ \c \n \r in, the same escapes out.
    const c = await open();
    await c.connect();
    await c.sendFrame('SUBSCRIBE', { id: 'e', destination: '/topic/e2e.escape', receipt: 'r' });
    await c.expectFrame('RECEIPT');
    const value = 'a:b\\nc\nd\re\\';  // a, colon, b, backslash, n, c, LF, d, CR, e, backslash
    await c.sendFrame('SEND', [['destination', '/topic/e2e.escape'], ['x-tricky', value]], 'x');
    const m = await c.expectFrame('MESSAGE');
    assert.ok(m.rawLines.includes('x-tricky:a\\cb\\\\nc\\nd\\re\\\\'),
              `raw header lines: ${JSON.stringify(m.rawLines)}`);
    assert.equal(m.headers['x-tricky'], value);
  });

  it('AcceptsFramesInBinaryWebSocketMessages', T, async () => {
    const c = await open();
    await c.send(encodeFrame('CONNECT', { 'accept-version': '1.2', host: 'localhost' }), { binary: true });
    await c.expectFrame('CONNECTED');
    await c.send(encodeFrame('SUBSCRIBE', { id: 'b', destination: '/topic/e2e.bin', receipt: 'r' }), { binary: true });
    await c.expectFrame('RECEIPT');
    await c.send(encodeFrame('SEND', { destination: '/topic/e2e.bin' }, Buffer.from([1, 2, 3])), { binary: true });
    const m = await c.expectFrame('MESSAGE');
    assert.deepEqual(m.body, Buffer.from([1, 2, 3]));
  });

  it('AcceptsAClientThatOffersNoSubprotocol', T, async () => {
    const c = await open(null);
    assert.equal(c.protocol, '', 'no Sec-WebSocket-Protocol in the answer');
    const connected = await c.connect();
    assert.equal(connected.headers.version, '1.2');
  });

  for (const offered of ['v10.stomp', 'v11.stomp', 'v12.stomp']) {
    it(`EchoesTheOnlyOfferedSubprotocol ${offered}`, T, async () => {
      const c = await open([offered]);
      assert.equal(c.protocol, offered);
      await c.connect();
    });
  }

  it('AnswersAWebSocketPingWithAPong', T, async () => {
    const c = await open();
    await c.connect();
    const payload = Buffer.from('ping-payload');
    c.ws.ping(payload);
    const deadline = Date.now() + scaled(5000);
    while (c.pongs.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(c.pongs.length, 1, 'one pong');
    assert.deepEqual(c.pongs[0], payload, 'the pong echoes the ping payload (RFC 6455 5.5.3)');
    // The session is unaffected.
    await c.sendFrame('DISCONNECT', { receipt: 'bye' });
    await c.expectFrame('RECEIPT');
  });

  it('NegotiatesStomp10WhenAcceptVersionIsAbsent', T, async () => {
    const c = await open();
    await c.sendFrame('CONNECT', { login: 'guest', passcode: 'guest' });
    const connected = await c.expectFrame('CONNECTED');
    assert.ok(connected.headers.version === undefined || connected.headers.version === '1.0',
              `version ${connected.headers.version}`);
    // STOMP 1.0 SUBSCRIBE needs no id; the MESSAGE still arrives.
    await c.sendFrame('SUBSCRIBE', { destination: '/topic/e2e.v10', receipt: 'r' });
    await c.expectFrame('RECEIPT');
    await c.sendFrame('SEND', { destination: '/topic/e2e.v10' }, 'old');
    assert.equal((await c.expectFrame('MESSAGE')).text, 'old');
  });

  it('NegotiatesTheHighestCommonVersion', T, async () => {
    const c = await open();
    const connected = await c.connect({ 'accept-version': '1.0,1.1', host: 'localhost' });
    assert.equal(connected.headers.version, '1.1');
  });

  it('RefusesAConnectWithNoCommonVersion', T, async () => {
    const c = await open();
    await c.sendFrame('CONNECT', { 'accept-version': '2.0,3.1', host: 'localhost' });
    const err = await c.expectFrame('ERROR');
    assert.ok(err.headers.message, 'ERROR has a message header');
    assert.ok(await c.waitClosed(), 'connection closed after ERROR');
  });

  it('RefusesAFrameBeforeConnect', T, async () => {
    const c = await open();
    await c.sendFrame('SEND', { destination: '/topic/e2e.early' }, 'too early');
    const err = await c.expectFrame('ERROR');
    assert.ok(err.headers.message);
    assert.ok(await c.waitClosed(), 'connection closed after ERROR');
  });

  it('RequiresASubscriptionIdInStomp12', T, async () => {
    const c = await open();
    await c.connect();
    await c.sendFrame('SUBSCRIBE', { destination: '/topic/e2e.noid', receipt: 'want-error' });
    const err = await c.expectFrame('ERROR');
    assert.ok(err.headers.message);
    assert.equal(err.headers['receipt-id'], 'want-error', 'ERROR names the receipt of the bad frame');
    assert.ok(await c.waitClosed());
  });

  it('NamesTheBadDestinationInTheError', T, async () => {
    const c = await open();
    await c.connect();
    await c.sendFrame('SEND', { destination: '/nowhere/e2e', receipt: 'r-bad' }, 'x');
    const err = await c.expectFrame('ERROR');
    // The message header is the summary; the destination may be named there or in the body.
    assert.match(`${err.headers.message}\n${err.text}`, /\/nowhere\/e2e/);
    assert.equal(err.headers['receipt-id'], 'r-bad');
    assert.ok(await c.waitClosed());
  });

  it('RejectsAnUnknownTransaction', T, async () => {
    const c = await open();
    await c.connect();
    await c.sendFrame('SEND', { destination: '/topic/e2e.tx', transaction: 'never-begun' }, 'x');
    const err = await c.expectFrame('ERROR');
    assert.ok(err.headers.message);
    assert.ok(await c.waitClosed());
  });

  it('RepliesToDisconnectWithTheReceiptThenCloses', T, async () => {
    const c = await open();
    await c.connect();
    await c.sendFrame('DISCONNECT', { receipt: 'bye-1' });
    assert.equal((await c.expectFrame('RECEIPT')).headers['receipt-id'], 'bye-1');
    assert.ok(await c.waitClosed(), 'the broker closes after the DISCONNECT receipt');
  });

  it('AcceptsTheStompCommandInPlaceOfConnect', T, async () => {
    const c = await open();
    await c.sendFrame('STOMP', { 'accept-version': '1.2', host: 'localhost' });
    assert.equal((await c.expectFrame('CONNECTED')).headers.version, '1.2');
  });
});
