// Graceful shutdown: SIGTERM with clients in every state must end in exit code 0, in time,
// with every connection closed by the broker.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { scaled, startBroker } from '../lib/broker.mjs';
import { RawTcpClient, RawWsClient } from '../lib/stomp-raw.mjs';
import { connectClient, shutdown, subscribe } from '../lib/stompjs-client.mjs';

describe('graceful shutdown', () => {
  it('ExitsWithStatusZeroOnSigtermRightAfterAnnouncingItsListeners', { timeout: scaled(60_000) }, async () => {
    // A supervisor may stop the broker as soon as it reported its ports; SIGTERM must be
    // handled from then on, not only once startup has finished.
    for (let round = 0; round < 10; round += 1) {
      const broker = await startBroker();
      const exit = await broker.stop();
      await broker.dispose();
      assert.equal(exit.signal, null, `round ${round}: stompd was killed by ${exit.signal} instead of ` +
                                      `shutting down\n${broker.log()}`);
      assert.equal(exit.code, 0, `round ${round}: exit code ${exit.code}\n${broker.log()}`);
    }
  });

  it('ExitsWithStatusZeroOnSigtermWithClientsConnected', { timeout: scaled(60_000) }, async () => {
    const broker = await startBroker();
    let client;
    try {
      // A subscribed stomp.js client, a connected raw WebSocket, a WebSocket that never sent
      // CONNECT, a connected TCP client with an unacked queue message, and a bare TCP socket.
      ({ client } = await connectClient(broker.wsUrl));
      await subscribe(client, '/topic/e2e.shutdown');
      const ws = await RawWsClient.open(broker.wsUrl, ['v12.stomp']);
      await ws.connect();
      const wsIdle = await RawWsClient.open(broker.wsUrl, ['v12.stomp']);
      const tcp = await RawTcpClient.open(broker.tcpPort);
      await tcp.connect();
      await tcp.sendFrame('SUBSCRIBE', { id: 'q', destination: '/queue/e2e.shutdown', ack: 'client-individual', receipt: 'r' });
      await tcp.expectFrame('RECEIPT');
      await tcp.sendFrame('SEND', { destination: '/queue/e2e.shutdown' }, 'unacked');
      await tcp.expectFrame('MESSAGE');
      const tcpIdle = await RawTcpClient.open(broker.tcpPort);

      const started = Date.now();
      const exit = await broker.stop({ deadlineMs: scaled(10_000) });
      const tookMs = Date.now() - started;
      assert.equal(exit.graceful, true, `stompd still running ${scaled(10_000)} ms after SIGTERM\n${broker.log()}`);
      assert.equal(exit.signal, null, `stompd died of ${exit.signal}\n${broker.log()}`);
      assert.equal(exit.code, 0, `stompd exit code ${exit.code} after ${tookMs} ms\n${broker.log()}`);

      for (const [name, c] of [['ws', ws], ['wsIdle', wsIdle], ['tcp', tcp], ['tcpIdle', tcpIdle]]) {
        assert.ok(await c.waitClosed(scaled(2000)), `${name} connection closed by the broker`);
      }
      await client.e2e.closes.take(scaled(2000));
    } finally {
      await shutdown(client);
      await broker.dispose();
    }
  });
});
