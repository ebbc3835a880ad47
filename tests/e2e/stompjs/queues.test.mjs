// Durable queues through @stomp/stompjs over WebSocket, as a backend uses /queue/notify: on
// one node, what was queued and not acknowledged is there after a restart (redelivered:true)
// and what was acknowledged is not; on two Redis-backed nodes, a message sent on one reaches
// a consumer on the other, and paging older history and resending with x-idempotency-key
// work across them too.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, describe, it } from 'node:test';

import { scaled, startBroker } from '../lib/broker.mjs';
import { startRedis } from '../lib/redis.mjs';
import {
  connectClient, loadOlder, publishConfirmed, shutdown, subscribe, withDeadline,
} from '../lib/stompjs-client.mjs';

const T = { timeout: scaled(60_000) };
const unique = (prefix) => `${prefix}.${randomUUID().slice(0, 8)}`;
const range = (from, to) => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);

async function stopCleanly(broker) {
  const exit = await broker.stop();
  assert.deepEqual([exit.code, exit.graceful], [0, true], `stompd did not exit cleanly\n${broker.log()}`);
}

describe('durable queues over stomp.js', () => {
  const clients = [];
  const connect = async (broker) => {
    const { client } = await connectClient(broker.wsUrl);
    clients.push(client);
    return client;
  };
  after(async () => { await shutdown(...clients); });

  it('KeepsWhatWasNotAcknowledgedAcrossARestart', T, async () => {
    const jobs = unique('/queue/notify');
    let broker = await startBroker();
    const producer = await connect(broker);
    for (const i of range(1, 6)) await publishConfirmed(producer, { destination: jobs, body: `push ${i}` });
    const worker = await connect(broker);
    const inbox = await subscribe(worker, jobs, { ack: 'client-individual', 'prefetch-count': '6' });
    const got = await inbox.takeN(6);
    for (const m of got.slice(0, 2)) m.ack();  // two done, four still held at the stop
    await publishConfirmed(worker, { destination: '/topic/flush', body: 'after the acks' });
    await shutdown(producer, worker);
    await stopCleanly(broker);

    broker = await startBroker({ dataDir: broker.dataDir });
    try {
      const again = await connect(broker);
      const back = await subscribe(again, jobs, { ack: 'client-individual' });
      const restored = await back.takeN(4);
      assert.deepEqual(restored.map((m) => m.body), ['push 3', 'push 4', 'push 5', 'push 6']);
      for (const m of restored) {
        assert.equal(m.headers.redelivered, 'true', 'restored from the journal');
        m.ack();
      }
      await publishConfirmed(again, { destination: jobs, body: 'push 7' });
      const next = await back.take();
      assert.equal(next.body, 'push 7');
      assert.equal(next.headers.redelivered, undefined);
      next.ack();
      await shutdown(again);
    } finally {
      await stopCleanly(broker);
      await broker.dispose();
    }
  });
});

describe('two Redis-backed nodes over stomp.js', () => {
  let redis;
  const nodes = [];
  const clients = [];
  const connect = async (node) => {
    const { client } = await connectClient(node.wsUrl);
    clients.push(client);
    return client;
  };

  after(async () => {
    await shutdown(...clients);
    for (const node of nodes) await stopCleanly(node).finally(() => node.dispose());
    if (redis) await redis.dispose();
  });

  async function startNodes() {
    redis = await startRedis();
    for (const name of ['node-1', 'node-2']) {
      const node = await startBroker({ config: { node_name: name }, extraArgs: ['--redis', redis.address] });
      nodes.push(node);
    }
    // Ready once a receipted SEND on each node is stored in Redis.
    for (const node of nodes) {
      const c = await connect(node);
      const deadline = Date.now() + scaled(10_000);
      for (;;) {
        try {
          await publishConfirmed(c, { destination: unique('/topic/ready'), body: 'ping' });
          break;
        } catch (e) {
          if (Date.now() > deadline) throw new Error(`${node.log()}\n${e.message}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    }
  }

  it('QueuesPagesAndIdempotencyKeysWorkAcrossNodes', T, async () => {
    await startNodes();
    const [node1, node2] = nodes;
    const a = await connect(node1);
    const b = await connect(node2);

    // A queue: sent on node 1, taken and acknowledged on node 2.
    const jobs = unique('/queue/notify');
    const worker = await subscribe(b, jobs, { ack: 'client-individual' });
    await publishConfirmed(a, { destination: jobs, body: 'push 1' });
    const job = await worker.take();
    assert.equal(job.body, 'push 1');
    job.ack();

    // A room: twelve messages from node 1, one of them resent on node 2 with its key.
    const room = unique('/topic/room');
    const key = { 'x-idempotency-key': 'api-message-5' };
    for (const i of range(1, 12)) {
      await publishConfirmed(a, { destination: room, body: `m${i}`, headers: i === 5 ? key : {} });
    }
    const resent = await publishConfirmed(b, { destination: room, body: 'm5', headers: key });
    assert.deepEqual([resent.headers['x-seq'], resent.headers['x-duplicate']], ['5', 'true']);

    // Scrolling back on node 2: pages of five, to the first message, and the resend is not in it.
    const pages = [];
    let beforeSeq = 13;
    for (;;) {
      const { messages, older } = await withDeadline(loadOlder(b, room, beforeSeq, 5), scaled(5000), 'a page');
      pages.push(messages.map((m) => m.body));
      if (!older) break;
      beforeSeq = Number(messages[0].headers['x-seq']);
    }
    assert.deepEqual(pages, [range(8, 12), range(3, 7), range(1, 2)].map((p) => p.map((i) => `m${i}`)));
  });
});
