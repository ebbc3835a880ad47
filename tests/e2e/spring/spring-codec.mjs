// Spring Framework's STOMP codec, ported line for line so the tests put on the wire exactly the
// bytes a Spring application does and read the broker's bytes exactly the way Spring reads
// them. Sources (spring-projects/spring-framework, 6.x, module spring-messaging unless noted):
//
//   simp/stomp/StompEncoder.java            encode(), writeHeaders(), escape()
//   simp/stomp/StompDecoder.java            decode(), decodeMessage(), skipEol(), readCommand(),
//                                           readHeaders(), unescape(), readPayload(),
//                                           tryConsumeEndOfLine()
//   simp/stomp/BufferingStompDecoder.java   decode(), checkBufferLimits()
//   simp/stomp/SplittingStompEncoder.java   encode()
//   simp/stomp/StompCommand.java            requiresContentLength(), isBodyAllowed()
//   simp/stomp/StompHeaderAccessor.java     getHeartbeat(), setPasscode()/protectPasscode()
//   tcp/reactor/AbstractNioBufferReactorNettyCodec.java  decode(): the relay's TCP decoding
//
// Native headers are modelled as Spring keeps them: an insertion-ordered map from name to a
// list of values (LinkedMultiValueMap), here an array of [name, [values...]] entries.

export const HEARTBEAT = 'HEARTBEAT';  // SimpMessageType.HEARTBEAT: no command, payload "\n"

const COMMANDS = ['CONNECT', 'STOMP', 'DISCONNECT', 'SUBSCRIBE', 'UNSUBSCRIBE', 'SEND', 'ACK', 'NACK',
                  'BEGIN', 'COMMIT', 'ABORT', 'CONNECTED', 'MESSAGE', 'RECEIPT', 'ERROR'];
// StompCommand.contentLengthRequired and bodyAllowed: both are SEND, MESSAGE, ERROR.
const requiresContentLength = (c) => c === 'SEND' || c === 'MESSAGE' || c === 'ERROR';
const isBodyAllowed = requiresContentLength;

export class StompConversionException extends Error {}

// NativeMessageHeaderAccessor's LinkedMultiValueMap: setNativeHeader() replaces the values of
// an existing name in place (LinkedHashMap.put keeps the position) or appends a new name;
// addNativeHeader() appends a value.
export class NativeHeaders {
  constructor(entries = []) { this.map = new Map(entries.map(([k, v]) => [k, Array.isArray(v) ? [...v] : [v]])); }
  set(name, value) { this.map.set(name, [value]); return this; }
  add(name, value) {
    if (this.map.has(name)) this.map.get(name).push(value); else this.map.set(name, [value]);
    return this;
  }
  first(name) { const v = this.map.get(name); return v ? v[0] : undefined; }
  entries() { return [...this.map.entries()]; }
  toObject() { return Object.fromEntries([...this.map.entries()].map(([k, v]) => [k, v[0]])); }
}

// StompEncoder.escape(): STOMP 1.2 "Value Encoding".
function escape(s) {
  let out = '';
  for (const c of s) {
    if (c === '\\') out += '\\\\';
    else if (c === ':') out += '\\c';
    else if (c === '\n') out += '\\n';
    else if (c === '\r') out += '\\r';
    else out += c;
  }
  return out;
}

// StompEncoder.encode(headers, payload) + writeHeaders().
//   command: a StompCommand name, or HEARTBEAT
//   headers: NativeHeaders (or entries); passcode: what StompHeaderAccessor.getPasscode()
//            returns, written in place of the "PROTECTED" native value of CONNECT/STOMP
export function stompEncode(command, headers, payload = Buffer.alloc(0), { passcode } = {}) {
  if (command === HEARTBEAT) return Buffer.from('\n');  // StompDecoder.HEARTBEAT_PAYLOAD
  const native = headers instanceof NativeHeaders ? headers : new NativeHeaders(headers || []);
  const parts = [Buffer.from(`${command}\n`, 'utf8')];
  const shouldEscape = command !== 'CONNECT' && command !== 'STOMP' && command !== 'CONNECTED';
  for (const [name, values0] of native.entries()) {
    if (requiresContentLength(command) && name === 'content-length') continue;
    let values = values0;
    if ((command === 'CONNECT' || command === 'STOMP') && name === 'passcode') values = [passcode];
    const key = shouldEscape ? escape(name) : name;
    for (const value of values) {
      parts.push(Buffer.from(`${key}:${shouldEscape ? escape(value) : value}\n`, 'utf8'));
    }
  }
  if (requiresContentLength(command)) parts.push(Buffer.from(`content-length:${payload.length}\n`, 'utf8'));
  parts.push(Buffer.from('\n'), Buffer.from(payload), Buffer.from([0]));
  return Buffer.concat(parts);
}

// SplittingStompEncoder.encode(): the encoded frame cut into bufferSizeLimit-byte pieces, each
// sent by WebSocketStompClient as its own WebSocket message.
export function splittingEncode(bufferSizeLimit, command, headers, payload, opts) {
  const result = stompEncode(command, headers, payload, opts);
  if (result.length <= bufferSizeLimit) return [result];
  const frames = [];
  for (let i = 0; i < result.length; i += bufferSizeLimit) {
    frames.push(result.subarray(i, Math.min(i + bufferSizeLimit, result.length)));
  }
  return frames;
}

// MimeTypeUtils.parseMimeType(), reduced to what makes it throw InvalidMimeTypeException for a
// header value a broker might plausibly produce: no "/", or an empty type or subtype.
function checkMimeType(value) {
  const main = value.split(';')[0].trim();
  const slash = main.indexOf('/');
  if (main === '*') return;
  if (slash <= 0 || slash === main.length - 1) {
    throw new StompConversionException(`Invalid mime type "${value}": does not contain '/'`);
  }
}

// StompDecoder: decode() over a buffer with a position, as the Java ByteBuffer is used.
export class StompDecoder {
  // Returns { messages, position }: position is where unconsumed (partial) content begins.
  // partialHeaders, when given, receives the headers of a trailing partial frame (for
  // BufferingStompDecoder's expectedContentLength).
  decode(buf, partialHeaders = null) {
    this.buf = buf;
    this.pos = 0;
    const messages = [];
    while (this.pos < buf.length) {
      const message = this.decodeMessage(partialHeaders);
      if (message) {
        messages.push(message);
        this.skipEol();
        if (this.pos >= buf.length) break;
      } else {
        break;
      }
    }
    return { messages, position: this.pos };
  }

  decodeMessage(partialHeaders) {
    this.skipEol();
    const mark = this.pos;
    const command = this.readCommand();
    if (command.length > 0) {
      let headers = null;
      let payload = null;
      if (this.pos < this.buf.length) {
        if (!COMMANDS.includes(command)) {
          // StompCommand.valueOf(command)
          throw new StompConversionException(`No enum constant StompCommand.${command}`);
        }
        headers = new NativeHeaders();
        this.readHeaders(headers, command);
        payload = this.readPayload(headers);
      }
      if (payload !== null) {
        if (payload.length > 0 && !isBodyAllowed(command)) {
          throw new StompConversionException(`${command} shouldn't have a payload: length=${payload.length}`);
        }
        // headerAccessor.updateSimpMessageHeadersFromStompHeaders(): parses content-type.
        const contentType = headers.first('content-type');
        if (contentType !== undefined) checkMimeType(contentType);
        return { command, headers, payload };
      }
      if (partialHeaders && headers) for (const [k, v] of headers.entries()) partialHeaders.map.set(k, v);
      this.pos = mark;
      return null;
    }
    return { command: HEARTBEAT, headers: new NativeHeaders(), payload: Buffer.from('\n') };
  }

  skipEol() { while (this.tryConsumeEndOfLine()) { /* skip */ } }

  readCommand() {
    const start = this.pos;
    let end = start;
    while (this.pos < this.buf.length) {
      const before = this.pos;
      if (this.tryConsumeEndOfLine()) { end = before; return this.buf.subarray(start, end).toString('utf8'); }
      this.pos += 1;
      end = this.pos;
    }
    return this.buf.subarray(start, end).toString('utf8');
  }

  readHeaders(headers, command) {
    const shouldUnescape = command !== 'CONNECT' && command !== 'CONNECTED' && command !== 'STOMP';
    for (;;) {
      const start = this.pos;
      let end = start;
      let headerComplete = false;
      while (this.pos < this.buf.length) {
        const before = this.pos;
        if (this.tryConsumeEndOfLine()) { end = before; headerComplete = true; break; }
        this.pos += 1;
        end = this.pos;
      }
      if (end > start && headerComplete) {
        const header = this.buf.subarray(start, end).toString('utf8');
        const colonIndex = header.indexOf(':');
        if (colonIndex <= 0) {
          if (this.pos < this.buf.length) {
            throw new StompConversionException(`Illegal header: '${header}'. A header must be of the form <name>:[<value>].`);
          }
        } else {
          const name = header.slice(0, colonIndex);
          const value = header.slice(colonIndex + 1);
          headers.add(shouldUnescape ? unescape(name) : name, shouldUnescape ? unescape(value) : value);
        }
      } else {
        break;
      }
    }
  }

  readPayload(headers) {
    // StompHeaderAccessor.getContentLength(): Integer.valueOf(first value); an invalid
    // number is ignored (logged), as if absent.
    let contentLength = null;
    const raw = headers.first('content-length');
    if (raw !== undefined) contentLength = /^[+-]?\d+$/.test(raw) ? Number(raw) : null;
    if (contentLength !== null && contentLength >= 0) {
      if (this.buf.length - this.pos > contentLength) {
        const payload = Buffer.from(this.buf.subarray(this.pos, this.pos + contentLength));
        this.pos += contentLength;
        if (this.buf[this.pos++] !== 0) throw new StompConversionException('Frame must be terminated with a null octet');
        return payload;
      }
      return null;
    }
    const nul = this.buf.indexOf(0, this.pos);
    if (nul < 0) { this.pos = this.buf.length; return null; }
    const payload = Buffer.from(this.buf.subarray(this.pos, nul));
    this.pos = nul + 1;
    return payload;
  }

  tryConsumeEndOfLine() {
    if (this.pos < this.buf.length) {
      const b = this.buf[this.pos++];
      if (b === 0x0a) return true;
      if (b === 0x0d) {
        if (this.pos < this.buf.length && this.buf[this.pos++] === 0x0a) return true;
        throw new StompConversionException("'\\r' must be followed by '\\n'");
      }
      this.pos -= 1;
    }
    return false;
  }
}

// StompDecoder.unescape().
function unescape(s) {
  let index = s.indexOf('\\');
  if (index === -1) return s;
  let out = '';
  let pos = 0;
  while (index >= 0) {
    out += s.slice(pos, index);
    if (index + 1 >= s.length) throw new StompConversionException(`Illegal escape sequence at index ${index}: ${s}`);
    const c = s[index + 1];
    if (c === 'r') out += '\r';
    else if (c === 'n') out += '\n';
    else if (c === 'c') out += ':';
    else if (c === '\\') out += '\\';
    else throw new StompConversionException(`Illegal escape sequence at index ${index}: ${s}`);
    pos = index + 2;
    index = s.indexOf('\\', pos);
  }
  return out + s.slice(pos);
}

// BufferingStompDecoder: what WebSocketStompClient (and StompSubProtocolHandler) feed every
// WebSocket message to; throws once buffered content passes bufferSizeLimit.
export class BufferingStompDecoder {
  constructor(bufferSizeLimit) {
    this.decoder = new StompDecoder();
    this.bufferSizeLimit = bufferSizeLimit;
    this.chunks = [];
    this.expectedContentLength = null;
  }

  bufferSize() { return this.chunks.reduce((n, c) => n + c.length, 0); }

  decode(newBuffer) {
    this.chunks.push(Buffer.from(newBuffer));
    this.checkBufferLimits();
    if (this.expectedContentLength !== null && this.bufferSize() < this.expectedContentLength) return [];
    const buf = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    this.chunks = [];
    this.expectedContentLength = null;
    const partial = new NativeHeaders();
    const { messages, position } = this.decoder.decode(buf, partial);
    if (position < buf.length) {
      this.chunks.push(buf.subarray(position));
      const cl = partial.first('content-length');
      this.expectedContentLength = cl === undefined ? null : Number(cl);
    }
    return messages;
  }

  checkBufferLimits() {
    if (this.expectedContentLength !== null && this.expectedContentLength > this.bufferSizeLimit) {
      throw new StompConversionException(`STOMP 'content-length' header value ${this.expectedContentLength}  exceeds configured buffer size limit ${this.bufferSizeLimit}`);
    }
    if (this.bufferSize() > this.bufferSizeLimit) {
      throw new StompConversionException(`The configured STOMP buffer size limit of ${this.bufferSizeLimit} bytes has been exceeded`);
    }
  }
}

// The relay's TCP read path: ReactorNettyTcpClient's StompMessageDecoder (a Netty
// ByteToMessageDecoder, which keeps unread bytes) calling
// AbstractNioBufferReactorNettyCodec.decode() -> StompDecoder.decode(): no size limit.
export class NettyStompDecoder {
  constructor() { this.decoder = new StompDecoder(); this.cumulation = Buffer.alloc(0); }

  decode(chunk) {
    this.cumulation = this.cumulation.length ? Buffer.concat([this.cumulation, chunk]) : Buffer.from(chunk);
    const { messages, position } = this.decoder.decode(this.cumulation);
    this.cumulation = this.cumulation.subarray(position);
    return messages;
  }
}

// StompHeaderAccessor.getHeartbeat(): "cx,cy" parsed with Long.parseLong, which rejects
// spaces; no comma means {0, 0}.
export function getHeartbeat(headers) {
  const raw = headers.first('heart-beat');
  const pos = raw === undefined ? -1 : raw.indexOf(',');
  if (pos === -1) return [0, 0];
  const parse = (s) => {
    if (!/^[+-]?\d+$/.test(s)) throw new StompConversionException(`NumberFormatException: For input string: "${s}"`);
    return Number(s);
  };
  return [parse(raw.slice(0, pos)), parse(raw.slice(pos + 1))];
}
