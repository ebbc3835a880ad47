// Authentication and authorization over WebSocket, through @stomp/stompjs as a browser app
// uses it: JWT bearer tokens (HS256, RS256, ES256) in the URL's access_token, as passcode and
// in an Authorization header; every way a token must be refused; token grants and rules on
// SUBSCRIBE, SEND and x-replay; close_on_expiry; wss:// with a self-signed certificate; the
// Origin allow-list; connection and publish-rate limits. The broker's debug log must never
// contain a token.
//
// Tokens are made here with node:crypto, so the test depends on no JWT library: what the
// broker accepts is checked against RFC 7515/7518/7519 as written, not against another
// implementation's reading of them.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';

import { scaled, startBroker } from '../lib/broker.mjs';
import {
  connectClient, makeClient, publishConfirmed, shutdown, stompProtocols, subscribe, withDeadline,
} from '../lib/stompjs-client.mjs';
import { encodeFrame, RawTcpClient, RawWsClient, waitFor } from '../lib/stomp-raw.mjs';

const T = { timeout: scaled(30_000) };

// --- tokens ----------------------------------------------------------------------------------

const b64url = (data) => Buffer.from(data).toString('base64url');
const nowS = () => Math.floor(Date.now() / 1000);

// alg: HS256 (key: secret string/Buffer), RS256 / ES256 (key: private KeyObject).
// header and claims are merged over the defaults; `sign` replaces the signing step.
function makeToken({ alg = 'HS256', key, header = {}, claims = {}, sign } = {}) {
  const h = b64url(JSON.stringify({ alg, typ: 'JWT', ...header }));
  const p = b64url(JSON.stringify(claims));
  const input = `${h}.${p}`;
  let sig;
  if (sign) sig = sign(input);
  else if (alg === 'HS256') sig = crypto.createHmac('sha256', key).update(input).digest();
  else if (alg === 'RS256') sig = crypto.sign('sha256', Buffer.from(input), key);
  else if (alg === 'ES256') sig = crypto.sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  else sig = Buffer.alloc(0);
  return `${input}.${b64url(sig)}`;
}

const ISSUER = 'https://auth.lostfound.example';
const AUDIENCE = 'stompd';
const ROOM = '/topic/lost-item.42.room.7';
const dmGrants = { subscribe: ['/topic/dm.{user}.*'], send: ['/topic/dm.{user}.*'] };

// The claims a valid token carries; `extra` overrides or adds.
function claimsFor(user, extra = {}) {
  const t = nowS();
  return { iss: ISSUER, aud: AUDIENCE, sub: user, iat: t, exp: t + 600, roles: ['student'], ...extra };
}

// Every secret the brokers were shown, so the log check can look for each one.
const secretsShown = [];
function remember(token) {
  secretsShown.push(token);
  return token;
}

const withToken = (url, token) => `${url}?access_token=${encodeURIComponent(token)}`;

// --- helpers ---------------------------------------------------------------------------------

const show = (frame) => `${frame.command} ${JSON.stringify(frame.headers)} ${JSON.stringify(frame.body)}`;

// A CONNECT the broker must refuse: ERROR `message:access refused` with no detail, no
// CONNECTED, then the broker closes the WebSocket.
async function expectRefused(url, config = {}) {
  const client = makeClient(url, config);
  client.activate();
  const state = client.e2e;
  try {
    await waitFor(() => state.connects.all.length || state.errors.all.length || state.closes.all.length,
                  scaled(10_000), `an answer to CONNECT from ${url}`);
    assert.equal(state.connects.all.length, 0, 'CONNECTED for credentials that must be refused');
    assert.equal(state.errors.all.length, 1,
                 `one ERROR before the close (closes: ${JSON.stringify(state.closes.all)})`);
    const err = state.errors.all[0];
    assert.equal(err.headers.message, 'access refused', show(err));
    // No detail: the client must not learn why (expired? bad signature? unknown user?).
    assert.match(err.body, /^(access refused)?\n?$/, `ERROR body gives no detail: ${show(err)}`);
    await state.closes.take(scaled(5000));
  } finally {
    await shutdown(client);
  }
}

// A SUBSCRIBE or SEND the broker must deny: ERROR `message:access denied` whose body names
// the destination, nothing delivered before it, then the close.
async function expectDenied(client, inbox, destination) {
  const state = client.e2e;
  const err = await state.errors.take(scaled(5000));
  assert.equal(err.headers.message, 'access denied', show(err));
  assert.ok(err.body.includes(destination), `ERROR body names ${destination}: ${show(err)}`);
  await state.closes.take(scaled(5000));
  if (inbox) assert.equal(inbox.length, 0, `nothing delivered: ${inbox.map(show).join(' | ')}`);
}

// The HTTP status a WebSocket handshake is answered with (101 when it upgrades).
function handshakeStatus(url, options = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, stompProtocols, options);
    const timer = setTimeout(() => { ws.terminate(); reject(new Error(`no answer from ${url}`)); }, scaled(5000));
    ws.once('open', () => { clearTimeout(timer); ws.terminate(); resolve(101); });
    ws.once('unexpected-response', (req, res) => {
      clearTimeout(timer);
      res.resume();
      req.destroy();
      resolve(res.statusCode);
    });
    ws.once('error', (err) => { clearTimeout(timer); reject(err); });
  });
}

function tempDir(prefix) {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

// Nothing secret in the broker's log: no token, no signature, no passcode.
function assertLogHasNoSecrets(broker, secrets) {
  for (const s of secrets) {
    const sig = s.split('.')[2];
    assert.ok(!broker.stderr.includes(s), `the log contains a token/passcode:\n${broker.log()}`);
    if (sig && sig.length >= 16) {
      assert.ok(!broker.stderr.includes(sig), `the log contains a token's signature:\n${broker.log()}`);
    }
  }
}

// --- HS256: token sources, refusals, grants and rules, expiry, Origin -------------------------

describe('JWT HS256 over stomp.js', () => {
  const secret = crypto.randomBytes(32).toString('hex');  // 64 bytes of text
  const hs = (claims, more = {}) => remember(makeToken({ alg: 'HS256', key: secret, claims, ...more }));
  let broker;
  const clients = [];
  const connect = async (url, config = {}) => {
    const { client } = await connectClient(url, config);
    clients.push(client);
    return client;
  };
  const tokenUrl = (user, extra) => withToken(broker.wsUrl, hs(claimsFor(user, extra)));

  before(async () => {
    broker = await startBroker({
      logLevel: 'debug',
      config: {
        websocket: { allowed_origins: ['https://lostfound.example'] },
        auth: {
          anonymous: false,
          jwt: {
            enabled: true, algorithm: 'HS256', secret, issuer: ISSUER, audience: AUDIENCE,
            leeway_ms: 0, close_on_expiry: true,
          },
          rules: [
            { roles: ['council'], subscribe: ['/topic/lost-item.**'], send: ['/topic/lost-item.**'] },
            { users: ['"*"'], subscribe: ['/topic/notice.**'] },
          ],
        },
      },
    });
  });

  after(async () => {
    await shutdown(...clients);
    if (broker) await broker.dispose();
  });

  it('AcceptsATokenInTheAccessTokenQuery', T, async () => {
    const alice = await connect(tokenUrl('alice', { stomp: dmGrants }));
    const inbox = await subscribe(alice, '/topic/dm.alice.q');
    await publishConfirmed(alice, { destination: '/topic/dm.alice.q', body: 'via query' });
    assert.equal((await inbox.take()).body, 'via query');
  });

  it('AcceptsATokenAsPasscode', T, async () => {
    const token = hs(claimsFor('alice', { stomp: dmGrants }));
    const alice = await connect(broker.wsUrl, { connectHeaders: { login: 'alice', passcode: token } });
    const inbox = await subscribe(alice, '/topic/dm.alice.p');
    await publishConfirmed(alice, { destination: '/topic/dm.alice.p', body: 'via passcode' });
    assert.equal((await inbox.take()).body, 'via passcode');
  });

  it('AcceptsATokenAsPasscodeWithoutLogin', T, async () => {
    const token = hs(claimsFor('alice', { stomp: dmGrants }));
    await connect(broker.wsUrl, { connectHeaders: { passcode: token } });
  });

  it('TellsWhoIsInARoomByUserToThoseWhoAskWithXPresence', T, async () => {
    const room = '/topic/notice.presence';
    const alice = await connect(tokenUrl('alice'));
    const watching = await subscribe(alice, room, { 'x-presence': 'true' });
    assert.equal(watching.receipt.headers['x-presence-count'], '1');
    const event = async () => {
      const m = await watching.take();
      return [m.headers['x-presence'], m.headers['x-presence-user'], m.headers['x-presence-count']];
    };
    assert.deepEqual(await event(), ['join', 'alice', '1']);
    const bob = await connect(tokenUrl('bob'));
    const bobsInbox = await subscribe(bob, room);  // bob does not ask: he gets no events
    assert.deepEqual(await event(), ['join', 'bob', '2']);
    const bobOnPhone = await connect(tokenUrl('bob'));
    await subscribe(bobOnPhone, room);
    await new Promise((r) => setTimeout(r, scaled(300)));
    assert.equal(watching.items.length, 0, 'his phone did not make him join again');
    assert.equal(bobsInbox.items.length, 0, 'no presence events for a subscription that did not ask');
    await withDeadline(bob.deactivate(), scaled(5000), 'bob to leave');
    await withDeadline(bobOnPhone.deactivate(), scaled(5000), "bob's phone to leave");
    assert.deepEqual(await event(), ['leave', 'bob', '1']);
  });

  it('AcceptsATokenInAnAuthorizationHeader', T, async () => {
    const token = hs(claimsFor('alice', { stomp: dmGrants }));
    await connect(broker.wsUrl, { connectHeaders: { Authorization: `Bearer ${token}` } });
  });

  it('RefusesAConnectWithoutCredentialsWhenAnonymousIsOff', T, async () => {
    await expectRefused(broker.wsUrl);
  });

  it('RefusesAnExpiredToken', T, async () => {
    const t = nowS();
    await expectRefused(withToken(broker.wsUrl, hs(claimsFor('alice', { iat: t - 120, exp: t - 60 }))));
  });

  it('RefusesATokenWithoutExp', T, async () => {
    const claims = claimsFor('alice');
    delete claims.exp;
    await expectRefused(withToken(broker.wsUrl, hs(claims)));
  });

  it('RefusesATokenNotYetValid', T, async () => {
    await expectRefused(withToken(broker.wsUrl, hs(claimsFor('alice', { nbf: nowS() + 300 }))));
  });

  it('RefusesATokenWithAWrongSignature', T, async () => {
    const forged = remember(makeToken({ alg: 'HS256', key: crypto.randomBytes(32).toString('hex'),
                                        claims: claimsFor('alice', { roles: ['council'] }) }));
    await expectRefused(withToken(broker.wsUrl, forged));
  });

  it('RefusesATokenWithATamperedPayload', T, async () => {
    // A valid student token whose payload is swapped for one claiming the council role.
    const [h, , s] = hs(claimsFor('alice')).split('.');
    const p = b64url(JSON.stringify(claimsFor('alice', { roles: ['council'] })));
    await expectRefused(withToken(broker.wsUrl, `${h}.${p}.${s}`));
  });

  it('RefusesAlgNone', T, async () => {
    const none = remember(makeToken({ alg: 'none', claims: claimsFor('alice', { roles: ['council'] }) }));
    assert.ok(none.endsWith('.'), 'an unsecured JWS has an empty signature');
    await expectRefused(withToken(broker.wsUrl, none));
    // And as passcode, where a lenient broker might skip the "JWT or not" decision.
    await expectRefused(broker.wsUrl, { connectHeaders: { login: 'alice', passcode: none } });
  });

  it('RefusesAnotherAlgorithmSignedWithTheSecret', T, async () => {
    // HS512 with the right secret: only the configured algorithm is accepted.
    const token = remember(makeToken({
      alg: 'HS512', key: secret, claims: claimsFor('alice'),
      sign: (input) => crypto.createHmac('sha512', secret).update(input).digest(),
    }));
    await expectRefused(withToken(broker.wsUrl, token));
  });

  it('RefusesAWrongIssuer', T, async () => {
    await expectRefused(withToken(broker.wsUrl, hs(claimsFor('alice', { iss: 'https://evil.example' }))));
  });

  it('RefusesAWrongAudience', T, async () => {
    await expectRefused(withToken(broker.wsUrl, hs(claimsFor('alice', { aud: 'another-service' }))));
  });

  it('AcceptsAnAudienceArrayContainingOurs', T, async () => {
    await connect(tokenUrl('alice', { aud: ['another-service', AUDIENCE] }));
  });

  it('RefusesGarbageInTheAccessTokenQuery', T, async () => {
    await expectRefused(withToken(broker.wsUrl, 'not-a-jwt'));
    await expectRefused(withToken(broker.wsUrl, 'a.b.c'));
  });

  it('LetsATokenGrantUseItsOwnDirectMessages', T, async () => {
    const alice = await connect(tokenUrl('alice', { stomp: dmGrants }));
    const inbox = await subscribe(alice, '/topic/dm.alice.x');
    await publishConfirmed(alice, { destination: '/topic/dm.alice.x', body: 'to myself' });
    const m = await inbox.take();
    assert.equal(m.body, 'to myself');
    assert.equal(m.headers.destination, '/topic/dm.alice.x');
  });

  it('DeniesSubscribingToAnotherUsersDirectMessages', T, async () => {
    const alice = await connect(tokenUrl('alice', { stomp: dmGrants }));
    const got = [];
    alice.subscribe('/topic/dm.bob.x', (m) => got.push(m), { receipt: 'denied-sub' });
    await expectDenied(alice, got, '/topic/dm.bob.x');
  });

  it('DeniesSendingToAnotherUsersDirectMessages', T, async () => {
    const bob = await connect(tokenUrl('bob', { stomp: dmGrants }));
    const bobInbox = await subscribe(bob, '/topic/dm.bob.x');
    const alice = await connect(tokenUrl('alice', { stomp: dmGrants }));
    alice.publish({ destination: '/topic/dm.bob.x', body: 'spoofed', headers: { receipt: 'denied-send' } });
    await expectDenied(alice, null, '/topic/dm.bob.x');
    // Bob's own message arrives, the denied one never did.
    await publishConfirmed(bob, { destination: '/topic/dm.bob.x', body: 'mine' });
    assert.equal((await bobInbox.take()).body, 'mine');
    assert.deepEqual(bobInbox.all.map((m) => m.body), ['mine']);
  });

  it('GrantsNothingThroughUserPatternsToAnUnsafeUserName', T, async () => {
    // "{user}" replaced blindly by "*" or "**" would open every user's direct messages.
    for (const user of ['*', '**', 'bob.x']) {
      const client = await connect(tokenUrl(user, { stomp: dmGrants }));
      const got = [];
      client.subscribe('/topic/dm.bob.x', (m) => got.push(m), { receipt: 'r' });
      await expectDenied(client, got, '/topic/dm.bob.x');
    }
  });

  it('DeniesWhatNoRuleOrGrantAllows', T, async () => {
    // A token without a stomp claim and no matching rule: reading /topic/notice.** (rule
    // users "*") is fine, writing there and anything else is denied.
    const carl = await connect(tokenUrl('carl'));
    await subscribe(carl, '/topic/notice.board');
    carl.publish({ destination: '/topic/notice.board', body: 'x', headers: { receipt: 'r' } });
    await expectDenied(carl, null, '/topic/notice.board');
    const dave = await connect(tokenUrl('dave'));
    const got = [];
    dave.subscribe('/topic/anything', (m) => got.push(m), { receipt: 'r' });
    await expectDenied(dave, got, '/topic/anything');
  });

  it('KeepsAOneToOneRoomBetweenTheStudentAndTheCouncil', T, async () => {
    // alice's token grants her the room; the council role has a rule for every lost item;
    // bob, another student, has neither. Denied attempts deliver nothing and are not journaled.
    const aliceGrants = {
      subscribe: ['/topic/dm.{user}.*', ROOM], send: ['/topic/dm.{user}.*', ROOM],
    };
    const alice = await connect(tokenUrl('alice', { stomp: aliceGrants }));
    const council = await connect(tokenUrl('carol', { roles: ['council'] }));
    const aliceIn = await subscribe(alice, ROOM);
    const councilIn = await subscribe(council, ROOM);

    await publishConfirmed(alice, { destination: ROOM, body: 'I lost my umbrella' });
    await publishConfirmed(council, { destination: ROOM, body: 'Is it blue?' });
    for (const inbox of [aliceIn, councilIn]) {
      assert.deepEqual((await inbox.takeN(2)).map((m) => m.body), ['I lost my umbrella', 'Is it blue?']);
    }

    // bob may not read it live...
    const bob1 = await connect(tokenUrl('bob', { stomp: dmGrants }));
    const bob1Got = [];
    bob1.subscribe(ROOM, (m) => bob1Got.push(m), { receipt: 'r' });
    await expectDenied(bob1, bob1Got, ROOM);
    // ...nor its history...
    const bob2 = await connect(tokenUrl('bob', { stomp: dmGrants }));
    const bob2Got = [];
    bob2.subscribe(ROOM, (m) => bob2Got.push(m), { receipt: 'r', 'x-replay': 'last:100' });
    await expectDenied(bob2, bob2Got, ROOM);
    // ...nor write to it, even claiming the council role in a header.
    const bob3 = await connect(tokenUrl('bob', { stomp: dmGrants }));
    bob3.publish({ destination: ROOM, body: 'bob was here', headers: { receipt: 'r', roles: 'council' } });
    await expectDenied(bob3, null, ROOM);

    // The room goes on; the next live message is the council's, not bob's.
    await publishConfirmed(council, { destination: ROOM, body: 'We found it' });
    for (const inbox of [aliceIn, councilIn]) assert.equal((await inbox.take()).body, 'We found it');

    // Replay shows exactly the three real messages, to alice and to the council.
    for (const [who, client] of [['alice', alice], ['council', council]]) {
      const replay = await subscribe(client, ROOM, { 'x-replay': 'last:100' });
      const replayed = replay.all.slice(0, replay.beforeReceipt).map((m) => m.body);
      assert.deepEqual(replayed, ['I lost my umbrella', 'Is it blue?', 'We found it'],
                       `${who}'s replay (RECEIPT ${show(replay.receipt)})`);
    }
  });

  it('ClosesTheConnectionWhenItsTokenExpires', { timeout: scaled(30_000) }, async () => {
    // exp 2-3 s from now, leeway 0: usable until then, then ERROR "token expired" and a close.
    const exp = Math.ceil(Date.now() / 1000) + 2;
    const client = await connect(tokenUrl('alice', { stomp: dmGrants, exp }));
    const inbox = await subscribe(client, '/topic/dm.alice.exp');
    await publishConfirmed(client, { destination: '/topic/dm.alice.exp', body: 'still valid' });
    assert.equal((await inbox.take()).body, 'still valid');
    const err = await client.e2e.errors.take(exp * 1000 - Date.now() + scaled(5000));
    const at = Date.now();
    assert.equal(err.headers.message, 'token expired', show(err));
    assert.ok(at >= exp * 1000 - 250, `ERROR ${exp * 1000 - at} ms before exp`);
    await client.e2e.closes.take(scaled(5000));
  });

  it('Answers403ToADisallowedOrigin', T, async () => {
    const url = tokenUrl('alice', { stomp: dmGrants });
    assert.equal(await handshakeStatus(url, { origin: 'https://evil.example' }), 403);
    assert.equal(await handshakeStatus(url, { origin: 'https://lostfound.example.evil.example' }), 403);
    assert.equal(await handshakeStatus(url, { origin: 'null' }), 403);
  });

  it('AcceptsAnAllowedOrigin', T, async () => {
    const alice = await connect(tokenUrl('alice', { stomp: dmGrants }),
                                { wsOptions: { origin: 'https://lostfound.example' } });
    const inbox = await subscribe(alice, '/topic/dm.alice.origin');
    await publishConfirmed(alice, { destination: '/topic/dm.alice.origin', body: 'same site' });
    assert.equal((await inbox.take()).body, 'same site');
  });

  it('NeverLogsATokenAtDebugLevel', T, async () => {
    assert.ok(secretsShown.length > 10, 'the tests above used tokens');
    assert.match(broker.stderr, /access refused/, 'refusals are logged (without secrets)');
    assertLogHasNoSecrets(broker, secretsShown);
  });
});

// --- RS256 and ES256 ---------------------------------------------------------------------------

for (const alg of ['RS256', 'ES256']) {
  describe(`JWT ${alg} over stomp.js`, () => {
    const keyType = alg === 'RS256' ? ['rsa', { modulusLength: 2048 }] : ['ec', { namedCurve: 'P-256' }];
    const { publicKey, privateKey } = crypto.generateKeyPairSync(...keyType);
    const other = crypto.generateKeyPairSync(...keyType);
    const publicPem = publicKey.export({ type: 'spki', format: 'pem' });
    const sign = (claims, key = privateKey) => remember(makeToken({ alg, key, claims }));
    let broker;
    let dir;
    const clients = [];

    before(async () => {
      dir = tempDir('stompd-e2e-jwt-');
      const keyFile = path.join(dir, 'issuer.pem');
      fs.writeFileSync(keyFile, publicPem);
      broker = await startBroker({
        logLevel: 'debug',
        config: {
          auth: {
            anonymous: false,
            jwt: { enabled: true, algorithm: alg, public_key_file: keyFile, issuer: ISSUER, audience: AUDIENCE },
            rules: [{ roles: ['council'], subscribe: ['/topic/lost-item.**'], send: ['/topic/lost-item.**'] }],
          },
        },
      });
    });

    after(async () => {
      await shutdown(...clients);
      if (broker) await broker.dispose();
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    it('AcceptsAValidTokenInTheAccessTokenQuery', T, async () => {
      const { client } = await connectClient(withToken(broker.wsUrl, sign(claimsFor('carol', { roles: ['council'] }))));
      clients.push(client);
      const inbox = await subscribe(client, ROOM);
      await publishConfirmed(client, { destination: ROOM, body: alg });
      assert.equal((await inbox.take()).body, alg);
    });

    it('AcceptsAValidTokenAsPasscode', T, async () => {
      const token = sign(claimsFor('alice', { stomp: dmGrants }));
      const { client } = await connectClient(broker.wsUrl, { connectHeaders: { login: 'alice', passcode: token } });
      clients.push(client);
      await subscribe(client, '/topic/dm.alice.x');
    });

    it('RefusesATokenSignedByAnotherKey', T, async () => {
      await expectRefused(withToken(broker.wsUrl, sign(claimsFor('alice'), other.privateKey)));
    });

    it('RefusesAnHs256TokenSignedWithThePublicKey', T, async () => {
      // Algorithm confusion: the public key is public, so an HS256 token "signed" with its PEM
      // text as the HMAC secret must not pass as the issuer's.
      for (const key of [publicPem, publicPem.trim(), publicKey.export({ type: 'spki', format: 'der' })]) {
        const token = remember(makeToken({ alg: 'HS256', key, claims: claimsFor('mallory', { roles: ['council'] }) }));
        await expectRefused(withToken(broker.wsUrl, token));
      }
    });

    it('RefusesAlgNone', T, async () => {
      await expectRefused(withToken(broker.wsUrl, remember(makeToken({ alg: 'none', claims: claimsFor('alice') }))));
    });

    it('RefusesAnExpiredToken', T, async () => {
      // Default leeway is 30 s: a minute ago is expired either way.
      const t = nowS();
      await expectRefused(withToken(broker.wsUrl, sign(claimsFor('alice', { iat: t - 600, exp: t - 60 }))));
    });

    if (alg === 'ES256') {
      it('RefusesADerEncodedSignature', T, async () => {
        // JWS wants R||S (RFC 7518 3.4); the ASN.1 DER form OpenSSL emits by default is not it.
        const token = remember(makeToken({
          alg, claims: claimsFor('alice'),
          sign: (input) => crypto.sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'der' }),
        }));
        await expectRefused(withToken(broker.wsUrl, token));
      });
    } else {
      it('RefusesAPssSignature', T, async () => {
        // PS256 is not RS256: PKCS#1 v1.5 only.
        const token = remember(makeToken({
          alg, claims: claimsFor('alice'),
          sign: (input) => crypto.sign('sha256', Buffer.from(input), {
            key: privateKey, padding: crypto.constants.RSA_PKCS1_PSS_PADDING,
          }),
        }));
        await expectRefused(withToken(broker.wsUrl, token));
      });
    }

    it('NeverLogsATokenAtDebugLevel', T, async () => {
      assertLogHasNoSecrets(broker, secretsShown);
    });
  });
}

// --- wss:// ------------------------------------------------------------------------------------

describe('stomp.js over wss:// with a self-signed certificate', () => {
  let broker;
  let dir;
  const clients = [];

  before(async () => {
    dir = tempDir('stompd-e2e-tls-');
    const key = path.join(dir, 'key.pem');
    const cert = path.join(dir, 'cert.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
                             '-subj', '/CN=localhost', '-keyout', key, '-out', cert], { stdio: 'ignore' });
    broker = await startBroker({
      config: { tls: { cert_file: cert, key_file: key }, websocket: { tls: true } },
    });
  });

  after(async () => {
    await shutdown(...clients);
    if (broker) await broker.dispose();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('ServesStompOverWss', T, async () => {
    assert.ok(broker.wsUrl.startsWith('wss://'), broker.wsUrl);
    const wsOptions = { rejectUnauthorized: false };
    const { client: sub } = await connectClient(broker.wsUrl, { wsOptions });
    const { client: pub } = await connectClient(broker.wsUrl, { wsOptions });
    clients.push(sub, pub);
    const inbox = await subscribe(sub, '/topic/tls.chat');
    await publishConfirmed(pub, { destination: '/topic/tls.chat', body: 'encrypted' });
    assert.equal((await inbox.take()).body, 'encrypted');
  });

  it('PresentsTheConfiguredCertificate', T, async () => {
    const c = await RawWsClient.open(broker.wsUrl, stompProtocols, { rejectUnauthorized: false });
    try {
      const peer = c.ws._socket.getPeerCertificate();
      assert.equal(peer.subject.CN, 'localhost');
      assert.ok(['TLSv1.2', 'TLSv1.3'].includes(c.ws._socket.getProtocol()), c.ws._socket.getProtocol());
      await c.connect();
    } finally {
      c.close();
    }
  });

  it('RefusesAnUnverifiedCertificateByDefault', T, async () => {
    // The client side of the contract: without rejectUnauthorized:false, a self-signed
    // certificate does not pass (so the test above really is TLS).
    await assert.rejects(handshakeStatus(broker.wsUrl), /self[- ]signed|certificate/i);
  });

  it('DoesNotSpeakPlainWebSocketOnTheTlsPort', T, async () => {
    const plain = broker.wsUrl.replace('wss://', 'ws://');
    await assert.rejects(handshakeStatus(plain), /socket hang up|ECONNRESET|Invalid|Unexpected|closed/i);
  });
});

// --- connection and publish limits ---------------------------------------------------------------

describe('connection and publish limits', () => {
  const secret = crypto.randomBytes(32).toString('hex');
  const perAddress = 3;
  const rate = 20;
  let broker;
  const open = [];

  // A raw TCP connection's first answer: CONNECTED, or the ERROR a refused connection gets
  // unasked (the broker writes it at accept, before reading anything).
  async function tryTcp(headers = {}) {
    const c = await RawTcpClient.open(broker.tcpPort);
    open.push(c);
    const answer = c.nextFrame(scaled(5000));
    c.sendFrame('CONNECT', { 'accept-version': '1.2', host: 'localhost', ...headers }).catch(() => {});
    const first = await answer.catch((err) => ({ command: 'CLOSED', headers: {}, text: err.message }));
    return { c, first };
  }

  // Retries (bounded) until a connection is accepted: slots are released asynchronously.
  async function waitForSlot(what) {
    const deadline = Date.now() + scaled(5000);
    for (;;) {
      const { c, first } = await tryTcp();
      if (first.command === 'CONNECTED') return c;
      c.close();
      if (Date.now() > deadline) {
        throw new Error(`${what}: still refused after ${scaled(5000)} ms: ${first.command} ${JSON.stringify(first.headers)}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async function closeAll() {
    for (const c of open.splice(0)) c.close();
    // Every slot back before the next test starts.
    const probes = [];
    for (let i = 0; i < perAddress; i += 1) probes.push(await waitForSlot('slot release'));
    for (const c of probes) c.close();
    await waitForSlot('slot release after the probes');
    for (const c of open.splice(0)) c.close();
  }

  before(async () => {
    broker = await startBroker({
      config: {
        // With jwt on, rules decide for everyone (tokens carry their own grants): anonymous
        // clients get the topics these tests publish to by rule.
        auth: {
          anonymous: true,
          jwt: { enabled: true, algorithm: 'HS256', secret },
          rules: [{ users: ['anonymous'], subscribe: ['/topic/**'], send: ['/topic/**'] }],
        },
        limits: { max_connections_per_address: perAddress, max_publish_rate: rate },
      },
    });
  });

  after(async () => {
    for (const c of open.splice(0)) c.close();
    if (broker) await broker.dispose();
  });

  it('RefusesConnectionsOverThePerAddressLimit', T, async () => {
    for (let i = 0; i < perAddress; i += 1) {
      const { first } = await tryTcp();
      assert.equal(first.command, 'CONNECTED', `connection ${i + 1} of ${perAddress}: ${first.command} ${first.text}`);
    }
    const { c, first } = await tryTcp();
    assert.equal(first.command, 'ERROR', `over the limit: ${first.command} ${first.text}`);
    assert.equal(first.headers.message, 'too many connections');
    assert.ok(await c.waitClosed(), 'closed after the ERROR');
    assert.equal(await handshakeStatus(broker.wsUrl), 503, 'WebSocket over the limit');
    // One leaves: the next one gets in.
    open.shift().close();
    await waitForSlot('after one connection closed');
    await closeAll();
  });

  it('CutsOffAPublisherOverTheRate', T, async () => {
    const { c, first } = await tryTcp();
    assert.equal(first.command, 'CONNECTED');
    // A full bucket: `rate` SENDs at once are fine...
    const burst = (from, n) => Buffer.concat(Array.from({ length: n }, (_, i) => encodeFrame(
      'SEND', { destination: '/topic/rate.burst', receipt: `s${from + i}` }, `m${from + i}`)));
    await c.send(burst(0, rate));
    for (let i = 0; i < rate; i += 1) assert.equal((await c.expectFrame('RECEIPT')).headers['receipt-id'], `s${i}`);
    // ...as many again right after are not.
    await c.send(burst(rate, rate)).catch(() => {});
    let receipts = 0;
    let err;
    for (let i = 0; i <= rate && !err; i += 1) {
      const f = await c.nextFrame();
      if (f.command === 'RECEIPT') receipts += 1; else err = f;
    }
    assert.ok(err, 'an ERROR');
    assert.equal(err.command, 'ERROR');
    assert.equal(err.headers.message, 'publish rate exceeded', show(err));
    assert.ok(receipts < rate / 2, `${receipts} of the second burst accepted`);
    assert.ok(await c.waitClosed(), 'closed after the ERROR');
    await closeAll();
  });

  it('LetsAPublisherUnderTheRateGoOnPastTheBucket', { timeout: scaled(30_000) }, async () => {
    // 1.5 buckets' worth at 60 % of the rate: the bucket refills as it goes.
    const { c, first } = await tryTcp();
    assert.equal(first.command, 'CONNECTED');
    const n = Math.ceil(rate * 1.5);
    for (let i = 0; i < n; i += 1) {
      const started = Date.now();
      await c.sendFrame('SEND', { destination: '/topic/rate.steady', receipt: `p${i}` }, `m${i}`);
      const f = await c.nextFrame();
      assert.equal(f.command, 'RECEIPT', `SEND ${i + 1} of ${n}: ${show(f)}`);
      const wait = 1000 / (rate * 0.6) - (Date.now() - started);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    await closeAll();
  });

  it('RefusesABadTokenRatherThanFallingBackToAnonymous', T, async () => {
    // Anonymous access is on here; a token that fails must still refuse the CONNECT.
    const forged = makeToken({ alg: 'HS256', key: 'not-the-secret-'.repeat(3), claims: { sub: 'alice', exp: nowS() + 600 } });
    for (const headers of [{ passcode: forged }, { Authorization: `Bearer ${forged}` }]) {
      const { c, first } = await tryTcp(headers);
      assert.equal(first.command, 'ERROR', `${Object.keys(headers)[0]}: ${first.command} ${first.text}`);
      assert.equal(first.headers.message, 'access refused');
      assert.ok(await c.waitClosed());
    }
    await closeAll();
  });

  it('ReleasesTheSlotOfATokenClientThatDisconnects', T, async () => {
    // A token with exp arms an expiry timer; a client that goes away must not keep its
    // connection slot (or its session) until that exp, 10 minutes from now. Last in this
    // block: when it fails, the slots stay taken.
    const token = makeToken({ alg: 'HS256', key: secret, claims: { sub: 'alice', exp: nowS() + 600 } });
    for (let i = 0; i < perAddress; i += 1) {
      const { first } = await tryTcp({ passcode: token });
      assert.equal(first.command, 'CONNECTED', `${first.command} ${first.text}`);
    }
    for (const c of open.splice(0)) c.close();
    for (let i = 0; i < perAddress; i += 1) await waitForSlot(`slot ${i + 1} after token clients left`);
    await closeAll();
  });
});
