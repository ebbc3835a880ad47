// stompd in a real browser (issue 13): headless Chromium (Debian's chromium, driven by
// puppeteer-core) loads a chat room page (room.html, room.js) that uses stomp.js from the npm
// package, served by the test's own page server, and talks to the real stompd over ws:// and
// over wss:// with a self-signed certificate made at test time with the openssl CLI.
//
// Two people, each in a browser context of their own (own localStorage, own connection),
// share one room: the second joins to the room's history, both exchange messages, then one
// reloads the page and resumes with `x-replay: after:<last x-seq>`, missing nothing and
// getting nothing twice. A page from another origin is refused at the WebSocket upgrade.
//
// STOMPD_CHROMIUM overrides /usr/bin/chromium. Screenshots go to the test's temporary
// directory (kept, and named in the error, when a test fails); STOMPD_BROWSER_SCREENSHOT=FILE
// also copies the resumed page over wss:// there: docs/browser-test.png is made that way.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto, { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import puppeteer from 'puppeteer-core';

import { scaled, startBroker } from '../lib/broker.mjs';
import { waitFor } from '../lib/stomp-raw.mjs';
import { withDeadline } from '../lib/stompjs-client.mjs';
import { startPageServer } from './page-server.mjs';

const T = { timeout: scaled(30_000) };
const waitMs = scaled(10_000);
const chromium = process.env.STOMPD_CHROMIUM || '/usr/bin/chromium';

// A self-signed certificate for 127.0.0.1 and the base64 SHA-256 of its public key, which
// Chromium's --ignore-certificate-errors-spki-list takes.
function makeCertificate(dir) {
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
                           '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
                           '-keyout', key, '-out', cert], { stdio: 'ignore' });
  const spki = new crypto.X509Certificate(fs.readFileSync(cert)).publicKey
    .export({ type: 'spki', format: 'der' });
  return { key, cert, spki: crypto.createHash('sha256').update(spki).digest('base64') };
}

// Fails, never skips, where Chromium is missing: a browser test that quietly did not run
// would look like one that passed.
function requireChromium() {
  if (!fs.existsSync(chromium)) {
    throw new Error(`no Chromium at ${chromium}: run "scripts/install-deps test" (it installs ` +
                    'Debian\'s chromium), or set STOMPD_CHROMIUM to a Chromium binary');
  }
}

function launchChromium(dir, spki) {
  return puppeteer.launch({
    executablePath: chromium,
    headless: true,
    userDataDir: path.join(dir, 'profile'),
    args: [
      // Trust the certificate made for this run and nothing else that fails to verify
      // (Chromium honours this switch only with a user data dir, given above).
      ...(spki ? [`--ignore-certificate-errors-spki-list=${spki}`] : []),
      // Chromium's sandbox will not start as root (containers, CI); elsewhere it stays on.
      ...(process.getuid?.() === 0 ? ['--no-sandbox'] : []),
    ],
    defaultViewport: { width: 720, height: 540 },
    timeout: scaled(30_000),          // for Chromium to start
    protocolTimeout: scaled(30_000),  // for any one DevTools call
  });
}

// Closes the browser; kills it when it does not close in time.
async function closeChromium(browser) {
  const closed = await withDeadline(browser.close().then(() => true), scaled(10_000), 'browser close')
    .catch(() => false);
  if (!closed) browser.process()?.kill('SIGKILL');
}

// One person's page: a browser context of its own, so localStorage and the connection are
// theirs alone, as for two people on two machines.
async function openPage(browser, server, broker, room, user) {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  page.setDefaultTimeout(waitMs);
  const person = { user, context, page, pageErrors: [], console: [] };
  page.on('pageerror', (err) => person.pageErrors.push(err.message));
  page.on('console', (msg) => person.console.push(msg.text()));
  await page.goto(server.url({ broker: broker.wsUrl, room, user }), { waitUntil: 'load' });
  return person;
}

const chatOf = (person) => person.page.evaluate(() => window.chat);

// Waits until fn(...args) is true in the page; a timeout names what was awaited and shows
// the page's window.chat.
async function waitInPage(person, what, fn, ...args) {
  try {
    await person.page.waitForFunction(fn, { polling: 20, timeout: waitMs }, ...args);
  } catch (err) {
    const chat = await chatOf(person).catch((e) => `unreadable: ${e.message}`);
    throw new Error(`${person.user}'s page: no ${what} within ${waitMs} ms (${err.message})\n` +
                    `window.chat: ${JSON.stringify(chat)}`);
  }
}

// The n-th join of this document has its RECEIPT; returns { replay, receipt }.
async function joined(person, n = 1) {
  await waitInPage(person, `RECEIPT of join ${n}`,
                   (k) => window.chat.joins.length === k && window.chat.joins[k - 1].receipt, n);
  return (await chatOf(person)).joins[n - 1];
}

const shows = (people, n) => Promise.all(people.map((p) => waitInPage(
  p, `message #${n} on the page`, (k) => document.querySelectorAll('#messages li').length >= k, n)));

// The message list as the person sees it: { seq, from, body, source } per line.
const shown = (person) => person.page.$$eval('#messages li', (lis) => lis.map((li) => ({
  seq: Number(li.dataset.seq),
  from: li.querySelector('.from').textContent,
  body: li.querySelector('.body').textContent,
  source: li.dataset.source,
})));

const joinOf = (join) => [join.replay, join.receipt['x-replay-count'], join.receipt['x-head-seq'],
                          join.receipt['x-replay-complete']];
const repeat = (value, n) => Array(n).fill(value);

for (const transport of ['ws', 'wss']) {
  describe(`a chat room in headless Chromium over ${transport}://`, () => {
    let dir;
    let keepDir = false;
    let home;     // serves the page from the origin the broker allows
    let foreign;  // serves the same page from another origin
    let broker;
    let browser;
    const people = [];
    const room = `/topic/browser.room.${randomUUID().slice(0, 8)}`;
    const log = [];  // the room's messages in x-seq order: { seq, from, body }
    let alice;
    let bob;

    before(async () => {
      requireChromium();
      dir = fs.mkdtempSync(path.join(os.tmpdir(), `stompd-e2e-browser-${transport}-`));
      home = await startPageServer();
      foreign = await startPageServer();
      // The broker allows the home page's origin, exactly, and so no other.
      const websocket = { allowed_origins: [home.origin] };
      let spki = '';
      if (transport === 'wss') {
        const cert = makeCertificate(dir);
        spki = cert.spki;
        broker = await startBroker({
          config: { tls: { cert_file: cert.cert, key_file: cert.key }, websocket: { ...websocket, tls: true } },
        });
      } else {
        broker = await startBroker({ config: { websocket } });
      }
      assert.ok(broker.wsUrl.startsWith(`${transport}://`), broker.wsUrl);
      browser = await launchChromium(dir, spki);
    });

    after(async () => {
      if (browser) await closeChromium(browser);
      await Promise.all([home, foreign].filter(Boolean).map((s) => s.close()));
      const exit = broker && await broker.dispose();
      if (dir && !keepDir) fs.rmSync(dir, { recursive: true, force: true });
      for (const p of people) assert.deepEqual(p.pageErrors, [], `uncaught errors in ${p.user}'s page`);
      if (exit) {
        assert.deepEqual([exit.code, exit.graceful], [0, true], `stompd did not exit cleanly\n${broker.log()}`);
      }
    });

    const open = async (server, user) => {
      const person = await openPage(browser, server, broker, room, user);
      people.push(person);
      return person;
    };

    // Takes a screenshot of each open page into the temporary directory when fn fails, and
    // keeps the directory, so a failure can be seen as well as read.
    const withScreenshots = (fn) => async (t) => {
      try {
        await fn();
      } catch (err) {
        keepDir = true;
        const files = [];
        for (const p of people) {
          const file = path.join(dir, `failed-${t.name}-${p.user}.png`);
          if (await p.page.screenshot({ path: file }).then(() => true, () => false)) files.push(file);
        }
        err.message += `\nscreenshots: ${files.join(' ') || 'none'}\n${broker.log()}`;
        throw err;
      }
    };

    // Types a message into the person's page and presses Enter; waits for the SEND's RECEIPT
    // and for every page in `to` to show it.
    async function say(person, body, to) {
      const before = (await chatOf(person)).sent.length;
      await person.page.type('#text', body);
      await person.page.keyboard.press('Enter');
      await waitInPage(person, 'RECEIPT of the SEND', (n) => window.chat.sent.length === n, before + 1);
      const seq = (await chatOf(person)).sent[before];
      assert.equal(seq, log.length + 1, `x-seq of ${person.user}'s "${body}"`);
      log.push({ seq, from: person.user, body });
      await shows(to, seq);
    }

    it('ExchangesMessagesBetweenTwoPagesWithReplayOnJoin', T, withScreenshots(async () => {
      alice = await open(home, 'alice');
      assert.deepEqual(joinOf(await joined(alice)), ['after:0', '0', '0', 'true'], 'an empty room');
      for (const body of ['anyone here?', 'found a blue umbrella in room 7', 'it has a name tag']) {
        await say(alice, body, [alice]);
      }

      bob = await open(home, 'bob');
      assert.deepEqual(joinOf(await joined(bob)), ['after:0', '3', '3', 'true'],
                       'bob joins to the whole room');
      await shows([bob], 3);
      await say(bob, 'that is mine!', [alice, bob]);
      await say(alice, 'great, where are you?', [alice, bob]);
      await say(bob, 'library, second floor', [alice, bob]);

      const asSent = (source) => log.map((m) => ({ ...m, source }));
      assert.deepEqual(await shown(alice), asSent('live'), 'alice was there for all of it');
      assert.deepEqual((await shown(bob)).map((m) => m.source),
                       [...repeat('replayed', 3), ...repeat('live', 3)], 'bob: history, then live');
      assert.deepEqual((await shown(bob)).map(({ source, ...m }) => m), log, 'bob sees the room');
      // What the broker sent, before the page's already-shown filter: each x-seq once.
      assert.deepEqual((await chatOf(alice)).received.map((m) => m.seq), [1, 2, 3, 4, 5, 6],
                       'MESSAGEs alice got');
      assert.deepEqual((await chatOf(bob)).received.map((m) => [m.seq, m.replayed]),
                       [[1, true], [2, true], [3, true], [4, false], [5, false], [6, false]],
                       'MESSAGEs bob got: [x-seq, replayed]');
    }));

    it('ResumesAReloadedPageAfterItsLastXSeqWithoutGapOrDuplicate', T, withScreenshots(async () => {
      assert.ok(alice && bob && log.length === 6, 'needs the room of the previous test');
      // Hold the reloaded page's app script: bob's old document is gone once it is asked for
      // (the new one has committed) and the new one has not run, so bob is away meanwhile.
      const held = home.hold('/room.js');
      const reloading = bob.page.reload({ waitUntil: 'load' });
      reloading.catch(() => {});  // awaited below; a failure before then must not go unhandled
      try {
        await withDeadline(held.arrived, waitMs, 'request for room.js from the reloading page');
        for (const body of ['on my way', 'bring your student card', 'the desk closes at six']) {
          await say(alice, body, [alice]);
        }
      } finally {
        held.release();
      }
      await reloading;

      assert.deepEqual(joinOf(await joined(bob)), ['after:6', '3', '9', 'true'],
                       'bob resumes after the last x-seq he saw');
      await say(alice, 'welcome back', [alice, bob]);

      // The new document got exactly what bob missed, replayed, then the live one.
      assert.deepEqual((await chatOf(bob)).received,
                       log.slice(6).map((m) => ({ ...m, replayed: m.seq !== 10 })),
                       'MESSAGEs the reloaded page got');
      assert.deepEqual(await shown(bob), log.map((m) => ({
        ...m, source: m.seq <= 6 ? 'cached' : m.seq <= 9 ? 'replayed' : 'live',
      })), 'bob: his cache, the missed messages, then live; no gap, no duplicate');
      assert.deepEqual(await shown(alice), log.map((m) => ({ ...m, source: 'live' })),
                       'alice was there for all of it');
      assert.deepEqual((await chatOf(alice)).received.map((m) => m.seq), log.map((m) => m.seq),
                       'MESSAGEs alice got');

      const file = path.join(dir, `resumed-${transport}.png`);
      await bob.page.screenshot({ path: file, fullPage: true });
      if (transport === 'wss' && process.env.STOMPD_BROWSER_SCREENSHOT) {
        fs.copyFileSync(file, process.env.STOMPD_BROWSER_SCREENSHOT);
      }
    }));

    it('RefusesAPageFromAForeignOrigin', T, withScreenshots(async () => {
      const stranger = await open(foreign, 'stranger');
      await waitInPage(stranger, 'WebSocket close', () => window.chat.closes.length > 0);
      const chat = await chatOf(stranger);
      assert.equal(chat.connects, 0, 'never CONNECTED');
      assert.deepEqual(chat.received, [], 'nothing of the room');
      assert.deepEqual(chat.errors, [], 'no STOMP ERROR either: the upgrade itself was refused');
      assert.equal(chat.closes[0].code, 1006, 'an abnormal close: the WebSocket never opened');
      assert.ok(stranger.console.some((line) => /403/.test(line)),
                `the browser saw the 403: ${JSON.stringify(stranger.console)}`);
      const refused = `websocket origin refused origin=${foreign.origin}`;
      await waitFor(() => broker.stderr.includes(refused), waitMs, `"${refused}" in the log`);
      assert.ok(!broker.stderr.includes(`origin=${home.origin}`), 'the page\'s own origin is allowed');
    }));
  });
}
