// History (the journal and x-replay) through @stomp/stompjs over WebSocket: what a chat app
// does to show a room's recent messages and to catch up after a reconnect without a gap.
//
// Every test uses its own destination, so the tests of one broker never see each other's
// history and sequences start at 1.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';

import { scaled, startBroker } from '../lib/broker.mjs';
import {
  connectClient, Inbox, loadOlder, makeClient, publishConfirmed, shutdown, subscribe, withDeadline,
} from '../lib/stompjs-client.mjs';

const T = { timeout: scaled(30_000) };

const room = (name) => `/topic/hist.${name}.${randomUUID().slice(0, 8)}`;
const range = (from, to) => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);
const seqs = (messages) => messages.map((m) => Number(m.headers['x-seq']));
const show = (frame) => `${frame.command} ${JSON.stringify(frame.headers)} ${JSON.stringify(frame.body)}`;

// Publishes bodies one after the other, each confirmed; returns the RECEIPT frames.
async function publishAll(client, destination, bodies, headers = {}) {
  const receipts = [];
  for (const body of bodies) receipts.push(await publishConfirmed(client, { destination, body, headers }));
  return receipts;
}

// The RECEIPT of a SUBSCRIBE with x-replay: every replayed MESSAGE before it, flagged
// x-replayed:true, with consecutive x-seq; nothing live before it. Takes the replayed
// messages out of the inbox, so take() returns live ones next.
function checkReplay(inbox, { from, to, head, complete }) {
  const replayed = inbox.all.slice(0, inbox.beforeReceipt);
  assert.equal(inbox.items.length, inbox.all.length, 'checkReplay before any take()');
  inbox.items.splice(0, replayed.length);
  const want = range(from, to);
  assert.deepEqual(seqs(replayed), want, `replayed x-seq (RECEIPT ${show(inbox.receipt)})`);
  for (const m of replayed) {
    assert.equal(m.headers['x-replayed'], 'true', `replayed frame flagged: ${show(m)}`);
    assert.equal(m.headers['message-id'], m.headers['x-seq'], `message-id equals x-seq: ${show(m)}`);
    assert.equal(m.headers.subscription, inbox.subscription.id, `subscription header: ${show(m)}`);
  }
  const r = inbox.receipt.headers;
  assert.equal(r['x-replay-count'], String(want.length), `x-replay-count: ${show(inbox.receipt)}`);
  assert.equal(r['x-head-seq'], String(head), `x-head-seq: ${show(inbox.receipt)}`);
  assert.equal(r['x-replay-complete'], String(complete), `x-replay-complete: ${show(inbox.receipt)}`);
  return replayed;
}

// A live MESSAGE: x-seq, message-id equal to it, and no x-replayed.
function checkLive(m, seq) {
  assert.equal(m.headers['x-seq'], String(seq), `live x-seq: ${show(m)}`);
  assert.equal(m.headers['message-id'], String(seq), `message-id equals x-seq: ${show(m)}`);
  assert.equal(m.headers['x-replayed'], undefined, `a live frame is not flagged replayed: ${show(m)}`);
}

describe('history over stomp.js', () => {
  let broker;
  const clients = [];
  const connect = async (config) => {
    const { client } = await connectClient(broker.wsUrl, config);
    clients.push(client);
    return client;
  };

  before(async () => { broker = await startBroker(); });
  after(async () => {
    await shutdown(...clients);
    const exit = await broker.dispose();
    assert.deepEqual([exit.code, exit.graceful], [0, true], `stompd did not exit cleanly\n${broker.log()}`);
  });

  it('CarriesXSeqFromOneInTheSendReceiptAndTheMessage', T, async () => {
    const dest = room('seq');
    const sub = await connect();
    const pub = await connect();
    const inbox = await subscribe(sub, dest);
    assert.equal(inbox.beforeReceipt, 0, 'no x-replay: live only');
    const receipts = await publishAll(pub, dest, ['a', 'b', 'c']);
    assert.deepEqual(receipts.map((r) => r.headers['x-seq']), ['1', '2', '3'],
                     `SEND RECEIPTs carry x-seq: ${receipts.map(show).join(' | ')}`);
    const got = await inbox.takeN(3);
    got.forEach((m, i) => checkLive(m, i + 1));
    assert.deepEqual(got.map((m) => m.body), ['a', 'b', 'c']);
  });

  it('ReplaysTheNewestNOldestFirstWithLastNSmallerThanTheRoom', T, async () => {
    const dest = room('last-small');
    const pub = await connect();
    await publishAll(pub, dest, range(1, 10).map((i) => `m${i}`));
    const sub = await connect();
    const inbox = await subscribe(sub, dest, { 'x-replay': 'last:3' });
    const replayed = checkReplay(inbox, { from: 8, to: 10, head: 10, complete: true });
    assert.deepEqual(replayed.map((m) => m.body), ['m8', 'm9', 'm10']);
    await publishConfirmed(pub, { destination: dest, body: 'live' });
    const live = await inbox.take();
    checkLive(live, 11);
    assert.equal(live.body, 'live');
  });

  it('ReplaysTheWholeRoomAsCompleteWithLastNLargerThanTheRoom', T, async () => {
    const dest = room('last-large');
    const pub = await connect();
    await publishAll(pub, dest, ['1', '2', '3', '4']);
    const sub = await connect();
    const inbox = await subscribe(sub, dest, { 'x-replay': 'last:100' });
    checkReplay(inbox, { from: 1, to: 4, head: 4, complete: true });
  });

  it('ReplaysNothingFromAnEmptyRoomWithHeadZero', T, async () => {
    const dest = room('empty');
    const sub = await connect();
    const inbox = await subscribe(sub, dest, { 'x-replay': 'last:10' });
    checkReplay(inbox, { from: 1, to: 0, head: 0, complete: true });
    const pub = await connect();
    await publishConfirmed(pub, { destination: dest, body: 'first' });
    checkLive(await inbox.take(), 1);
  });

  it('LoadsOlderMessagesPageByPageWithBefore', T, async () => {
    const dest = room('older');
    const pub = await connect();
    await publishAll(pub, dest, range(1, 25).map((i) => `m${i}`));
    const reader = await connect();
    const pages = [];
    let beforeSeq = 26;
    for (;;) {
      const { messages, older } = await withDeadline(loadOlder(reader, dest, beforeSeq, 10),
                                                     scaled(5000), 'a page of older messages');
      pages.push(seqs(messages));
      for (const m of messages) assert.equal(m.headers['x-replayed'], 'true', show(m));
      if (!older) break;
      beforeSeq = Number(messages[0].headers['x-seq']);
    }
    assert.deepEqual(pages, [range(16, 25), range(6, 15), range(1, 5)]);
    // The pages never subscribed: a live message reaches a live subscription only.
    const live = await subscribe(reader, dest);
    await publishConfirmed(pub, { destination: dest, body: 'live' });
    checkLive(await live.take(), 26);
    assert.equal(live.items.length, 0);
  });

  it('AResendWithTheSameIdempotencyKeyGetsTheFirstReceiptAndIsDeliveredOnce', T, async () => {
    const dest = room('idem');
    const sub = await connect();
    const inbox = await subscribe(sub, dest);
    const pub = await connect();
    const headers = { 'x-idempotency-key': 'message-from-api-17' };
    const first = await publishConfirmed(pub, { destination: dest, body: 'hi', headers });
    const again = await publishConfirmed(pub, { destination: dest, body: 'hi', headers });
    assert.equal(again.headers['x-seq'], first.headers['x-seq']);
    assert.equal(again.headers['x-duplicate'], 'true');
    assert.equal(first.headers['x-duplicate'], undefined);
    await publishConfirmed(pub, { destination: dest, body: 'next' });
    assert.deepEqual((await inbox.takeN(2)).map((m) => m.body), ['hi', 'next']);
  });

  it('ReplaysEveryMessageAfterSWithAfter', T, async () => {
    const dest = room('after');
    const pub = await connect();
    await publishAll(pub, dest, range(1, 6).map(String));
    const sub = await connect();
    const fromTwo = await subscribe(sub, dest, { 'x-replay': 'after:2' });
    assert.deepEqual(checkReplay(fromTwo, { from: 3, to: 6, head: 6, complete: true }).map((m) => m.body),
                     ['3', '4', '5', '6']);
    const fromZero = await subscribe(sub, dest, { 'x-replay': 'after:0' });
    checkReplay(fromZero, { from: 1, to: 6, head: 6, complete: true });
    const fromHead = await subscribe(sub, dest, { 'x-replay': 'after:6' });
    checkReplay(fromHead, { from: 7, to: 6, head: 6, complete: true });
    await publishConfirmed(pub, { destination: dest, body: '7' });
    for (const inbox of [fromTwo, fromZero, fromHead]) checkLive(await inbox.take(), 7);
  });

  it('ReplaysMessagesStoredAtOrAfterTWithSince', T, async () => {
    const dest = room('since');
    const pub = await connect();
    await publishAll(pub, dest, ['old1', 'old2', 'old3']);
    // since:T is inclusive, in Unix ms: let the clock pass the millisecond in which the last
    // old message was stored (its RECEIPT came after it was) before taking T.
    const lastOld = Date.now();
    while (Date.now() <= lastOld + 1) await new Promise((r) => setTimeout(r, 1));
    const t = Date.now();
    await publishAll(pub, dest, ['new4', 'new5']);
    const sub = await connect();
    const recent = await subscribe(sub, dest, { 'x-replay': `since:${t}` });
    assert.deepEqual(checkReplay(recent, { from: 4, to: 5, head: 5, complete: true }).map((m) => m.body),
                     ['new4', 'new5']);
    const all = await subscribe(sub, dest, { 'x-replay': 'since:0' });
    checkReplay(all, { from: 1, to: 5, head: 5, complete: true });
    const future = await subscribe(sub, dest, { 'x-replay': `since:${Date.now() + 3_600_000}` });
    checkReplay(future, { from: 6, to: 5, head: 5, complete: true });
  });

  it('ReplaysTheBodyAndTheSendersHeadersAsPublished', T, async () => {
    const dest = room('headers');
    const pub = await connect();
    await publishConfirmed(pub, {
      destination: dest,
      body: 'grüße 😀',
      headers: { 'content-type': 'text/plain;charset=utf-8', 'x-author': 'Zoë', 'x-colon': 'a:b' },
    });
    const sub = await connect();
    const inbox = await subscribe(sub, dest, { 'x-replay': 'last:1' });
    const [m] = checkReplay(inbox, { from: 1, to: 1, head: 1, complete: true });
    assert.equal(m.body, 'grüße 😀');
    assert.equal(m.headers.destination, dest);
    assert.equal(m.headers['content-type'], 'text/plain;charset=utf-8');
    assert.equal(m.headers['x-author'], 'Zoë');
    assert.equal(m.headers['x-colon'], 'a:b');
  });

  it('ResumesWithAfterTheLastSeenSeqAfterAReconnect', T, async () => {
    const dest = room('resume');
    const pub = await connect();
    const first = await connect();
    const before = await subscribe(first, dest);
    await publishAll(pub, dest, ['1', '2', '3']);
    const seen = await before.takeN(3);
    const lastSeen = Number(seen.at(-1).headers['x-seq']);
    assert.equal(lastSeen, 3);
    await shutdown(first);

    await publishAll(pub, dest, ['4', '5', '6']);  // missed while away

    const again = await connect();
    const inbox = await subscribe(again, dest, { 'x-replay': `after:${lastSeen}` });
    const replayed = checkReplay(inbox, { from: 4, to: 6, head: 6, complete: true });
    assert.deepEqual(replayed.map((m) => m.body), ['4', '5', '6']);
    await publishConfirmed(pub, { destination: dest, body: '7' });
    const live = await inbox.take();
    checkLive(live, 7);
    assert.equal(inbox.all.length, 4, 'exactly the missed ones, then the live one');
  });

  it('ServesTwoSubscriptionsOfOneConnectionEachItsOwnReplay', T, async () => {
    const dest = room('two');
    const other = room('two-other');
    const pub = await connect();
    await publishAll(pub, dest, ['1', '2', '3', '4']);
    await publishAll(pub, other, ['x1', 'x2']);
    const sub = await connect();
    const lastTwo = await subscribe(sub, dest, { 'x-replay': 'last:2' });
    const everything = await subscribe(sub, dest, { 'x-replay': 'after:0' });
    const liveOnly = await subscribe(sub, dest);
    const otherRoom = await subscribe(sub, other, { 'x-replay': 'after:1' });
    assert.notEqual(lastTwo.subscription.id, everything.subscription.id);
    checkReplay(lastTwo, { from: 3, to: 4, head: 4, complete: true });
    checkReplay(everything, { from: 1, to: 4, head: 4, complete: true });
    assert.equal(liveOnly.beforeReceipt, 0, 'no x-replay, no history');
    checkReplay(otherRoom, { from: 2, to: 2, head: 2, complete: true });

    await publishConfirmed(pub, { destination: dest, body: '5' });
    await publishConfirmed(pub, { destination: other, body: 'x3' });
    for (const inbox of [lastTwo, everything, liveOnly]) {
      const m = await inbox.take();
      checkLive(m, 5);
      assert.equal(m.headers.subscription, inbox.subscription.id);
    }
    checkLive(await otherRoom.take(), 3);
    // One copy per subscription: a later confirmed publish arrives next, nothing in between.
    await publishConfirmed(pub, { destination: dest, body: '6' });
    for (const inbox of [lastTwo, everything, liveOnly]) checkLive(await inbox.take(), 6);
  });

  for (const value of ['last:abc', 'foo:1', 'after:-1', 'last:', 'since:soon', 'last:1x']) {
    it(`RejectsInvalidXReplay(${value})WithAnErrorNamingHeaderAndValue`, T, async () => {
      const client = await connect();
      client.subscribe(room('invalid'), () => assert.fail('no MESSAGE after an invalid x-replay'),
                       { 'x-replay': value, receipt: 'never' });
      const err = await client.e2e.errors.take();
      const text = `${err.headers.message ?? ''}\n${err.body}`;
      assert.match(text, /x-replay/, `the ERROR names the header: ${show(err)}`);
      if (value) assert.ok(text.includes(value), `the ERROR names the value ${JSON.stringify(value)}: ${show(err)}`);
      await client.e2e.closes.take();
    });
  }

  it('RejectsXReplayOnAQueue', T, async () => {
    const client = await connect();
    const dest = `/queue/hist.q.${randomUUID().slice(0, 8)}`;
    client.subscribe(dest, () => {}, { 'x-replay': 'last:5' });
    const err = await client.e2e.errors.take();
    const text = `${err.headers.message ?? ''}\n${err.body}`;
    assert.ok(err.headers.message, `ERROR has a message header: ${show(err)}`);
    assert.ok(text.includes('x-replay') && text.includes(dest), `names x-replay and ${dest}: ${show(err)}`);
  });

  it('NeverJournalsAQueue', T, async () => {
    const dest = `/queue/hist.q.${randomUUID().slice(0, 8)}`;
    const client = await connect();
    const inbox = await subscribe(client, dest);
    const receipt = await publishConfirmed(client, { destination: dest, body: 'q' });
    assert.equal(receipt.headers['x-seq'], undefined, `no x-seq for a queue SEND: ${show(receipt)}`);
    const m = await inbox.take();
    assert.equal(m.headers['x-seq'], undefined, `no x-seq on a queue MESSAGE: ${show(m)}`);
    assert.ok(m.headers['message-id']);
  });

  // README's "History" section: remember the last x-seq seen and subscribe in onConnect with
  // after:<it> (after:0 the first time), skipping anything already shown; the SUBSCRIBE's
  // RECEIPT says whether the replay was complete. The receipt watcher is set inside onConnect:
  // stomp.js refuses watchForReceipt without a connection and forgets watchers on reconnect.
  it('ResumesWithoutGapOrDuplicateWithTheReadmePattern', T, async () => {
    const dest = room('readme');
    const pub = await connect();
    await publishAll(pub, dest, ['1', '2']);

    const storage = new Map();  // stands in for localStorage
    const shown = new Inbox(`MESSAGE on ${dest}`);
    const receipts = [];
    let gate = Promise.resolve();
    const app = makeClient(broker.wsUrl, {
      reconnectDelay: 50,
      beforeConnect: () => gate,  // the test decides when the reconnect may happen
    });
    let lastSeq = Number(storage.get('room-seq') ?? 0);
    app.onConnect = () => {
      app.watchForReceipt('room-live', (receipt) => receipts.push(receipt.headers));
      app.subscribe(dest, (msg) => {
        const seq = Number(msg.headers['x-seq']);
        if (seq <= lastSeq) return;  // already shown
        shown.put(msg);
        lastSeq = seq;
        storage.set('room-seq', String(seq));
      }, { 'x-replay': `after:${lastSeq}`, receipt: 'room-live' });
      app.e2e.connects.put(null);
    };
    clients.push(app);
    app.activate();
    await shown.takeN(2);  // the first connect: the room's history
    await publishConfirmed(pub, { destination: dest, body: '3' });
    await shown.take();

    let open;
    gate = new Promise((r) => { open = r; });
    app.e2e.sockets.at(-1).terminate();  // the network drops
    await app.e2e.closes.take();
    await publishAll(pub, dest, ['4', '5', '6']);  // missed while away
    open();
    await shown.takeN(3, scaled(10_000));
    await publishConfirmed(pub, { destination: dest, body: '7' });
    await shown.take();

    assert.equal(app.e2e.connects.all.length, 2, 'connected twice');
    assert.deepEqual(seqs(shown.all), range(1, 7), 'every message once, in order');
    assert.deepEqual(shown.all.map((m) => m.body), range(1, 7).map(String));
    assert.deepEqual(shown.all.map((m) => m.headers['x-replayed'] === 'true'),
                     [true, true, false, true, true, true, false], 'replayed: 1, 2 and the missed 4-6');
    assert.deepEqual(receipts.map((r) => [r['x-replay-count'], r['x-head-seq'], r['x-replay-complete']]),
                     [['2', '2', 'true'], ['3', '6', 'true']], 'one RECEIPT per (re)subscribe');
    assert.equal(storage.get('room-seq'), '7');
  });
});

describe('history with journal destination rules', () => {
  let broker;
  const clients = [];
  const connect = async () => {
    const { client } = await connectClient(broker.wsUrl);
    clients.push(client);
    return client;
  };

  before(async () => {
    broker = await startBroker({
      config: {
        journal: {
          destinations: [
            { pattern: '/topic/ephemeral.*', journaled: false },
            { pattern: '/topic/typing/*', journaled: false },
            { pattern: '/topic/chat.**', journaled: true, max_messages: 100, max_age_ms: 0 },
          ],
        },
      },
    });
  });
  after(async () => {
    await shutdown(...clients);
    const exit = await broker.dispose();
    assert.deepEqual([exit.code, exit.graceful], [0, true], `stompd did not exit cleanly\n${broker.log()}`);
  });

  // Publishes one confirmed message and returns [RECEIPT, MESSAGE] as a subscriber saw them.
  async function roundTrip(dest) {
    const sub = await connect();
    const pub = await connect();
    const inbox = await subscribe(sub, dest);
    const receipt = await publishConfirmed(pub, { destination: dest, body: 'hi' });
    return [receipt, await inbox.take()];
  }

  it('DeliversANonJournaledTopicLiveWithoutXSeq', T, async () => {
    const [receipt, m] = await roundTrip(`/topic/ephemeral.typing${randomUUID().slice(0, 8)}`);
    assert.equal(receipt.headers['x-seq'], undefined, `no x-seq in the SEND RECEIPT: ${show(receipt)}`);
    assert.equal(m.headers['x-seq'], undefined, `no x-seq: ${show(m)}`);
    assert.equal(m.body, 'hi');
    assert.ok(m.headers['message-id'], 'still a message-id');
  });

  it('SplitsPatternSegmentsAtSlashes', T, async () => {
    // /topic/typing/* : one segment after "typing/", like "." does.
    const [receipt, m] = await roundTrip(`/topic/typing/${randomUUID().slice(0, 8)}`);
    assert.equal(receipt.headers['x-seq'], undefined, `not journaled: ${show(receipt)}`);
    assert.equal(m.headers['x-seq'], undefined, `not journaled: ${show(m)}`);
    const [, deeper] = await roundTrip(`/topic/typing/a/${randomUUID().slice(0, 8)}`);
    assert.equal(deeper.headers['x-seq'], '1', `two segments: no rule, journaled: ${show(deeper)}`);
  });

  it('MatchesOneSegmentWithAStar', T, async () => {
    // Two segments after "ephemeral": no rule matches, so the default journals it.
    const [receipt, m] = await roundTrip(`/topic/ephemeral.a.b${randomUUID().slice(0, 8)}`);
    assert.equal(receipt.headers['x-seq'], '1', `journaled: ${show(receipt)}`);
    assert.equal(m.headers['x-seq'], '1', `journaled: ${show(m)}`);
  });

  it('MatchesAnyNumberOfSegmentsWithTwoStars', T, async () => {
    const [, m] = await roundTrip(`/topic/chat.rooms.eu.${randomUUID().slice(0, 8)}`);
    assert.equal(m.headers['x-seq'], '1', `journaled: ${show(m)}`);
  });

  it('JournalsATopicNoRuleMatches', T, async () => {
    const [, m] = await roundTrip(`/topic/other.${randomUUID().slice(0, 8)}`);
    assert.equal(m.headers['x-seq'], '1', `journaled by default: ${show(m)}`);
  });

  it('RejectsXReplayOnANonJournaledTopic', T, async () => {
    const client = await connect();
    const dest = `/topic/ephemeral.t${randomUUID().slice(0, 8)}`;
    client.subscribe(dest, () => {}, { 'x-replay': 'last:5' });
    const err = await client.e2e.errors.take();
    const text = `${err.headers.message ?? ''}\n${err.body}`;
    assert.ok(err.headers.message, `ERROR has a message header: ${show(err)}`);
    assert.ok(text.includes('x-replay') && text.includes(dest), `names x-replay and ${dest}: ${show(err)}`);
  });
});
