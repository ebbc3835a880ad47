// The chat room app of the browser test: stomp.js (the UMD bundle's global StompJs) in a real
// browser, resuming the room the way README's "History" section tells an app to. It remembers
// the last x-seq it showed, and the messages themselves (a chat app's local cache), in
// localStorage; every (re)join subscribes with `x-replay: after:<last x-seq>`, which is
// after:0, the whole room, the first time, and skips anything already shown.
//
// window.chat is what the test reads: every MESSAGE this document received (before the
// already-shown filter, so a duplicate from the broker would show up there), the RECEIPTs of
// its joins, WebSocket closes and ERROR frames.
(() => {
  const params = new URLSearchParams(location.search);
  const brokerURL = params.get('broker');
  const room = params.get('room');
  const user = params.get('user');
  const storageKey = `stompd-room:${room}`;
  const stored = JSON.parse(localStorage.getItem(storageKey) ?? '{"lastSeq":0,"messages":[]}');
  let lastSeq = stored.lastSeq;

  const chat = {
    connects: 0,
    joins: [],      // { replay, receipt }: the x-replay asked for, then its RECEIPT's headers
    received: [],   // { seq, from, body, replayed } of every MESSAGE, in arrival order
    sent: [],       // x-seq from the RECEIPT of each SEND
    closes: [],     // { code, reason } of each WebSocket close
    errors: [],     // { message, body } of each ERROR frame
  };
  window.chat = chat;

  const $ = (id) => document.getElementById(id);
  $('room').textContent = room;
  $('user').textContent = user;
  $('broker').textContent = brokerURL;
  const setStatus = (text, cls) => {
    $('status').textContent = text;
    $('status').className = cls;
  };

  function show(m, source) {
    const li = document.createElement('li');
    li.className = source;
    li.dataset.seq = String(m.seq);
    li.dataset.source = source;
    for (const [cls, text] of [['seq', `#${m.seq}`], ['from', m.from], ['body', m.body], ['tag', source]]) {
      const span = document.createElement('span');
      span.className = cls;
      span.textContent = text;
      li.append(span);
    }
    $('messages').append(li);
  }
  for (const m of stored.messages) show(m, 'cached');

  const client = new StompJs.Client({
    brokerURL,
    reconnectDelay: 0,  // the test reloads the page itself; a refused page must not retry
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
    debug: () => {},
  });

  client.onConnect = () => {
    chat.connects += 1;
    setStatus('connected', 'connected');
    const join = { replay: `after:${lastSeq}`, receipt: null };
    chat.joins.push(join);
    const receipt = `join-${chat.connects}`;
    // Receipt watchers belong to one connection: register before subscribing, every time.
    client.watchForReceipt(receipt, (frame) => {
      join.receipt = frame.headers;
      const h = frame.headers;
      $('resume').textContent = `joined with x-replay: ${join.replay} · replayed ${h['x-replay-count']}` +
                                ` · head x-seq ${h['x-head-seq']} · complete ${h['x-replay-complete']}`;
    });
    client.subscribe(room, (frame) => {
      const m = {
        seq: Number(frame.headers['x-seq']),
        from: frame.headers['x-from'] ?? '?',
        body: frame.body,
        replayed: frame.headers['x-replayed'] === 'true',
      };
      chat.received.push(m);
      if (m.seq <= lastSeq) return;  // already shown
      show(m, m.replayed ? 'replayed' : 'live');
      lastSeq = m.seq;
      stored.lastSeq = m.seq;
      stored.messages.push({ seq: m.seq, from: m.from, body: m.body });
      localStorage.setItem(storageKey, JSON.stringify(stored));
    }, { 'x-replay': join.replay, receipt });
  };
  client.onStompError = (frame) => chat.errors.push({ message: frame.headers.message, body: frame.body });
  client.onWebSocketClose = (evt) => {
    chat.closes.push({ code: evt.code, reason: evt.reason });
    setStatus(chat.connects ? 'disconnected' : `refused (close ${evt.code})`, 'closed');
  };

  let sends = 0;
  $('compose').addEventListener('submit', (evt) => {
    evt.preventDefault();
    const body = $('text').value.trim();
    if (!body || !client.connected) return;
    const receipt = `send-${++sends}`;
    client.watchForReceipt(receipt, (frame) => chat.sent.push(Number(frame.headers['x-seq'])));
    client.publish({ destination: room, body, headers: { 'x-from': user, receipt } });
    $('text').value = '';
  });

  client.activate();
})();
