// A chat room on two stompd nodes sharing history through one Redis, driven by
// @stomp/stompjs over WebSocket (the JS half of "stomp.js and stomp.py end to end against two
// nodes"; tests/e2e/python/cluster_test.py covers the cluster in raw STOMP, and
// tests/e2e/python/stomp_py_cluster_test.py is this suite for stomp.py).
//
// Client A is on node 1 and client B on node 2, in the same room. Both publish; both see every
// message exactly once, in the same x-seq order, in one x-epoch. Then B leaves, A goes on
// talking, and B comes back on the other node (node 1) with `x-replay: after:<last x-seq B
// saw>` and the `x-epoch` it saw: exactly the messages B missed, flagged x-replayed, before
// the SUBSCRIBE's RECEIPT, then live ones.
//
// Presence (x-presence) across the two nodes: users on either node counted once each, in the
// RECEIPT's x-presence-count and in the join and leave events both nodes' subscribers get.
//
// Each suite starts its own redis-server on a free loopback port (lib/redis.mjs); it fails,
// naming scripts/install-deps test, when there is none. Every room is a fresh destination, so
// sequences start at 1.

import assert from 'node:assert/strict';
import { pbkdf2Sync, randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';

import { scaled, startBroker } from '../lib/broker.mjs';
import { startRedis } from '../lib/redis.mjs';
import { waitFor } from '../lib/stomp-raw.mjs';
import {
  connectClient, publishConfirmed, shutdown, subscribe, withDeadline,
} from '../lib/stompjs-client.mjs';

const T = { timeout: scaled(60_000) };
const PER_CLIENT = 4;  // messages each of A and B publishes while both are in the room
const MISSED = 3;      // messages A publishes while B is away

const room = () => `/topic/room.${randomUUID().slice(0, 8)}`;
const range = (from, to) => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);
const seqs = (messages) => messages.map((m) => Number(m.headers['x-seq']));
const bodies = (messages) => messages.map((m) => m.body);
const show = (frame) => `${frame.command} ${JSON.stringify(frame.headers)} ${JSON.stringify(frame.body)}`;
const sanitizerReports = (log) => log.split('\n').filter(
  (l) => l.includes('ERROR: AddressSanitizer') || l.includes('ERROR: LeakSanitizer') ||
         l.includes('runtime error:'));

// GET /readyz on the node's admin listener: { status, body }, or { status: null, body: why }.
function readyz(broker) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port: broker.listeners.admin.port, path: '/readyz',
                           timeout: scaled(5000) }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
      res.on('error', (err) => resolve({ status: null, body: String(err) }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve({ status: null, body: String(err) }));
  });
}

// Waits until the node says it is ready (connected to Redis): /readyz 200 "ready".
async function waitReady(broker, name) {
  await waitFor(() => broker.listeners.admin, scaled(10_000), `${name}'s admin listener\n${broker.log()}`);
  const deadline = Date.now() + scaled(10_000);
  for (;;) {
    const got = await readyz(broker);
    if (got.status === 200 && got.body.trim() === 'ready') return;
    if (Date.now() > deadline) {
      throw new Error(`${name}: /readyz still ${JSON.stringify(got)} after ${scaled(10_000)} ms\n${broker.log()}`);
    }
    await new Promise((r) => setTimeout(r, 50));  // polling a state that changes on the node's timers
  }
}

// Ends the clients, then the nodes and Redis: every node must stop cleanly (exit 0 on SIGTERM,
// no sanitizer report).
async function stopCleanly(clients, nodes, redis) {
  await shutdown(...clients);
  const problems = [];
  for (const [k, node] of nodes.entries()) {
    const exit = await node.dispose();
    const reports = sanitizerReports(node.stderr);
    if (exit.code !== 0 || !exit.graceful || reports.length) {
      problems.push(`node-${k + 1}: exit ${JSON.stringify(exit)}, sanitizer reports ` +
                    `${JSON.stringify(reports)}\n${node.log()}`);
    }
  }
  if (redis) await redis.dispose();
  assert.deepEqual(problems, [], 'every node stops cleanly');
}

// Publishes bodies one after the other, each confirmed; returns the RECEIPT frames.
async function publishAll(client, destination, list) {
  const receipts = [];
  for (const body of list) receipts.push(await publishConfirmed(client, { destination, body }));
  return receipts;
}

describe('a chat room on two nodes over stomp.js', () => {
  let redis;
  const nodes = [];
  const clients = [];
  const connect = async (node) => {
    const { client } = await connectClient(node.wsUrl);
    clients.push(client);
    return client;
  };
  const logs = () => [...nodes.map((n, k) => `=== node-${k + 1} ===\n${n.log()}`), redis.log()].join('\n');

  before(async () => {
    redis = await startRedis();
    for (const name of ['node-1', 'node-2']) {
      const node = await startBroker({ config: { node_name: name }, extraArgs: ['--redis', redis.address] });
      nodes.push(node);
      await waitReady(node, name);
    }
  });

  after(() => stopCleanly(clients, nodes, redis));

  // A on node 1 and B on node 2 subscribe (to the RECEIPT) and publish PER_CLIENT messages
  // each, at the same time. Returns what both saw, live, and the RECEIPTs of every SEND.
  async function chat() {
    const dest = room();
    const [node1, node2] = nodes;
    const a = await connect(node1);
    const b = await connect(node2);
    const inboxA = await subscribe(a, dest);
    const inboxB = await subscribe(b, dest);
    assert.equal(inboxA.beforeReceipt, 0, 'no x-replay: live only');
    assert.equal(inboxB.beforeReceipt, 0, 'no x-replay: live only');
    const [fromA, fromB] = await Promise.all([
      publishAll(a, dest, range(1, PER_CLIENT).map((i) => `A says ${i}`)),
      publishAll(b, dest, range(1, PER_CLIENT).map((i) => `B says ${i}`)),
    ]);
    const total = 2 * PER_CLIENT;
    // x-seq -> body, from the RECEIPTs: what every subscriber must see at that position.
    const bySeq = new Map();
    const epochs = new Set();
    for (const [r, body] of [...fromA.map((r, i) => [r, `A says ${i + 1}`]),
                             ...fromB.map((r, i) => [r, `B says ${i + 1}`])]) {
      assert.ok(r.headers['x-seq'] && r.headers['x-epoch'], `SEND RECEIPT carries x-seq and x-epoch: ${show(r)}`);
      assert.ok(!bySeq.has(Number(r.headers['x-seq'])), `x-seq given twice: ${show(r)}`);
      bySeq.set(Number(r.headers['x-seq']), body);
      epochs.add(r.headers['x-epoch']);
    }
    assert.deepEqual([...bySeq.keys()].sort((x, y) => x - y), range(1, total), 'RECEIPTs give x-seq 1..total');
    assert.equal(epochs.size, 1, `one epoch: ${[...epochs]}`);
    const [epoch] = epochs;
    const seenA = await inboxA.takeN(total, scaled(10_000)).catch((e) => assert.fail(`A: ${e.message}\n${logs()}`));
    const seenB = await inboxB.takeN(total, scaled(10_000)).catch((e) => assert.fail(`B: ${e.message}\n${logs()}`));
    return { dest, a, b, inboxA, inboxB, seenA, seenB, bySeq, epoch, total };
  }

  // A live MESSAGE at x-seq `seq` of this room, in `epoch`, for `inbox`'s subscription.
  function checkLive(m, inbox, { seq, body, epoch }, who) {
    const what = `${who}: ${show(m)}`;
    assert.equal(m.headers['x-seq'], String(seq), what);
    assert.equal(m.body, body, what);
    assert.equal(m.headers['x-epoch'], epoch, what);
    assert.equal(m.headers.subscription, inbox.subscription.id, what);
    assert.equal(m.headers['x-replayed'], undefined, `a live frame is not flagged replayed: ${what}`);
    assert.ok(m.headers['message-id'], `message-id: ${what}`);
  }

  it('DeliversEveryMessageOnceInOneXSeqOrderToClientsOnBothNodes', T, async () => {
    const { dest, a, inboxA, inboxB, seenA, seenB, bySeq, epoch, total } = await chat();
    for (const [who, inbox, seen] of [['A on node 1', inboxA, seenA], ['B on node 2', inboxB, seenB]]) {
      assert.deepEqual(seqs(seen), range(1, total), `${who}: every x-seq once, in order`);
      seen.forEach((m, i) => checkLive(m, inbox, { seq: i + 1, body: bySeq.get(i + 1), epoch }, who));
      assert.equal(new Set(seen.map((m) => m.headers['message-id'])).size, total, `${who}: message-ids unique`);
    }
    assert.deepEqual(bodies(seenA), bodies(seenB), 'A and B see the room in the same order');
    // One copy each: the next confirmed message is the next thing either of them gets.
    await publishConfirmed(a, { destination: dest, body: 'last' });
    for (const [who, inbox] of [['A', inboxA], ['B', inboxB]]) {
      checkLive(await inbox.take(), inbox, { seq: total + 1, body: 'last', epoch }, who);
      assert.equal(inbox.items.length, 0, `${who}: nothing after the last message`);
    }
  });

  it('ResumesOnTheOtherNodeWithAfterTheLastSeenXSeqAndItsEpoch', T, async () => {
    const { dest, a, b, inboxA, seenB, epoch, total } = await chat();
    const lastSeen = Number(seenB.at(-1).headers['x-seq']);
    assert.equal(lastSeen, total);
    assert.equal(seenB.at(-1).headers['x-epoch'], epoch);

    // B leaves (DISCONNECT), and A goes on talking.
    await withDeadline(b.deactivate(), scaled(10_000), 'B to disconnect');
    const missed = range(1, MISSED).map((i) => `while B was away ${i}`);
    const receipts = await publishAll(a, dest, missed);
    assert.deepEqual(receipts.map((r) => r.headers['x-seq']), range(total + 1, total + MISSED).map(String),
                     `SEND RECEIPTs: ${receipts.map(show).join(' | ')}`);
    const aSaw = await inboxA.takeN(MISSED);
    aSaw.forEach((m, i) => checkLive(m, inboxA, { seq: total + 1 + i, body: missed[i], epoch }, 'A'));

    // B comes back on node 1, the other node, from where it left off.
    const back = await connect(nodes[0]);
    const inbox = await subscribe(back, dest, { 'x-replay': `after:${lastSeen}`, 'x-epoch': epoch });
    const replayed = inbox.all.slice(0, inbox.beforeReceipt);
    const r = inbox.receipt;
    assert.deepEqual(seqs(replayed), range(lastSeen + 1, lastSeen + MISSED),
                     `exactly the missed ones before the RECEIPT ${show(r)}\n${logs()}`);
    assert.deepEqual(bodies(replayed), missed);
    for (const m of replayed) {
      assert.equal(m.headers['x-replayed'], 'true', `replayed frame flagged: ${show(m)}`);
      assert.equal(m.headers['x-epoch'], epoch, `replayed frame's epoch: ${show(m)}`);
      assert.equal(m.headers.subscription, inbox.subscription.id, `subscription header: ${show(m)}`);
    }
    assert.deepEqual([r.headers['x-replay-count'], r.headers['x-head-seq'], r.headers['x-replay-complete'],
                      r.headers['x-epoch']],
                     [String(MISSED), String(total + MISSED), 'true', epoch], `SUBSCRIBE RECEIPT ${show(r)}`);

    // Then live: A's next message reaches both, B once, right after the replay.
    inbox.items.splice(0, replayed.length);
    const next = { seq: total + MISSED + 1, body: 'welcome back', epoch };
    await publishConfirmed(a, { destination: dest, body: next.body });
    checkLive(await inbox.take(), inbox, next, 'B back on node 1');
    checkLive(await inboxA.take(), inboxA, next, 'A');
    // And B's own message, sent on node 1 now, reaches A too.
    const reply = { seq: total + MISSED + 2, body: 'thanks', epoch };
    await publishConfirmed(back, { destination: dest, body: reply.body });
    checkLive(await inbox.take(), inbox, reply, 'B back on node 1');
    checkLive(await inboxA.take(), inboxA, reply, 'A');
    assert.equal(inbox.all.length, MISSED + 2, 'B: the missed ones, then the two live ones, nothing else');
    assert.equal(inbox.items.length + inboxA.items.length, 0, 'nothing more for A or B');
  });
});

// The passcode encoding stompd accepts (stompd --hash-passcode): pbkdf2-sha256$<n>$<salt>$<key>.
function hashPasscode(passcode, iterations = 10_000) {
  const salt = randomBytes(16);
  const key = pbkdf2Sync(passcode, salt, iterations, 32, 'sha256');
  return `pbkdf2-sha256$${iterations}$${salt.toString('base64')}$${key.toString('base64')}`;
}

describe('who is in a room on two nodes over stomp.js (x-presence)', () => {
  let redis;
  const nodes = [];
  const clients = [];
  const users = ['alice', 'bob'];
  const connect = async (node, user) => {
    const { client } = await connectClient(node.wsUrl, { connectHeaders: { login: user, passcode: `${user}-pw` } });
    clients.push(client);
    return client;
  };
  const logs = () => [...nodes.map((n, k) => `=== node-${k + 1} ===\n${n.log()}`), redis.log()].join('\n');

  before(async () => {
    redis = await startRedis();
    const auth = {
      anonymous: false,
      users: users.map((name) => ({ name, passcode: `"${hashPasscode(`${name}-pw`)}"` })),
      rules: [{ users, subscribe: ['/topic/room.**'], send: ['/topic/room.**'] }],
    };
    for (const name of ['node-1', 'node-2']) {
      const node = await startBroker({ config: { node_name: name, auth }, extraArgs: ['--redis', redis.address] });
      nodes.push(node);
      await waitReady(node, name);
    }
  });

  after(() => stopCleanly(clients, nodes, redis));

  it('CountsEachUserOnceAcrossBothNodesAndTellsBothNodesWhoJoinsAndLeaves', T, async () => {
    const dest = room();
    const [node1, node2] = nodes;
    const alice = await connect(node1, 'alice');
    const watching = await subscribe(alice, dest, { 'x-presence': 'true' });
    assert.equal(watching.receipt.headers['x-presence-count'], '1', show(watching.receipt));
    const event = async (inbox) => {
      const m = await inbox.take().catch((e) => assert.fail(`${e.message}\n${logs()}`));
      assert.equal(m.headers['x-seq'], undefined, `presence is not journaled: ${show(m)}`);
      return [m.headers['x-presence'], m.headers['x-presence-user'], m.headers['x-presence-count']];
    };
    assert.deepEqual(await event(watching), ['join', 'alice', '1']);
    const bob = await connect(node2, 'bob');
    const bobWatching = await subscribe(bob, dest, { 'x-presence': 'true' });
    assert.equal(bobWatching.receipt.headers['x-presence-count'], '2', show(bobWatching.receipt));
    assert.deepEqual(await event(watching), ['join', 'bob', '2'], 'alice on node 1 sees bob join on node 2');
    assert.deepEqual(await event(bobWatching), ['join', 'bob', '2']);
    const bobOnPhone = await connect(node1, 'bob');
    await subscribe(bobOnPhone, dest);
    await new Promise((r) => setTimeout(r, scaled(300)));
    assert.equal(watching.items.length, 0, 'his phone on the other node did not make him join again');
    await withDeadline(bob.deactivate(), scaled(5000), 'bob on node 2 to leave');
    await new Promise((r) => setTimeout(r, scaled(300)));
    assert.equal(watching.items.length, 0, 'bob is still there, on his phone');
    await withDeadline(bobOnPhone.deactivate(), scaled(5000), "bob's phone to leave");
    assert.deepEqual(await event(watching), ['leave', 'bob', '1']);
  });
});
