// Serves the browser test's chat room page from 127.0.0.1 on an ephemeral port, so the page
// has an origin of its own (http://127.0.0.1:PORT) that a broker can allow or refuse. The
// stomp.js bundle comes from tests/e2e/node_modules, as package-lock.json pins it: no CDN.
//
// hold(pathname) lets a test stop time inside a page load: the next request for that path is
// answered only when the test releases it.

import fs from 'node:fs';
import http from 'node:http';

const file = (relative) => new URL(relative, import.meta.url);
const files = new Map([
  ['/room.html', [file('./room.html'), 'text/html; charset=utf-8']],
  ['/room.js', [file('./room.js'), 'text/javascript; charset=utf-8']],
  ['/stomp.umd.js', [file('../node_modules/@stomp/stompjs/bundles/stomp.umd.js'),
                     'text/javascript; charset=utf-8']],
]);

export async function startPageServer() {
  const holds = new Map();  // pathname -> { arrived(), released: Promise }
  const requests = [];      // pathnames, in the order they were asked for
  const server = http.createServer(async (req, res) => {
    const { pathname } = new URL(req.url, 'http://page.invalid');
    requests.push(pathname);
    const entry = files.get(pathname);
    if (req.method !== 'GET' || !entry) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    const hold = holds.get(pathname);
    if (hold) {
      holds.delete(pathname);
      hold.arrived();
      await hold.released;
    }
    // no-store: a reload must fetch every file again, so a held one is really held.
    res.writeHead(200, { 'content-type': entry[1], 'cache-control': 'no-store' });
    res.end(fs.readFileSync(entry[0]));
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const origin = `http://127.0.0.1:${server.address().port}`;
  const releases = new Set();

  return {
    origin,
    requests,
    url: (params) => `${origin}/room.html?${new URLSearchParams(params)}`,

    // Holds the next GET of pathname. `arrived` resolves when it came; release() answers it.
    hold(pathname) {
      let arrived;
      let release;
      const hold = {
        arrived: new Promise((resolve) => { arrived = resolve; }),
        released: new Promise((resolve) => { release = resolve; }),
      };
      holds.set(pathname, { arrived, released: hold.released });
      releases.add(release);
      return {
        arrived: hold.arrived,
        release: () => {
          holds.delete(pathname);
          release();
        },
      };
    },

    async close() {
      for (const release of releases) release();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
