// The Spring codec port checked against vectors from Spring's own unit tests
// (spring-messaging/src/test/java/org/springframework/messaging/simp/stomp/):
// StompEncoderTests, StompDecoderTests, BufferingStompDecoderTests, SplittingStompEncoderTests.
// If the port drifts from Spring, the broker tests built on it would prove nothing.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  BufferingStompDecoder, getHeartbeat, HEARTBEAT, NativeHeaders, splittingEncode, StompConversionException,
  StompDecoder, stompEncode,
} from './spring-codec.mjs';

const b = (s) => Buffer.from(s, 'utf8');
const decodeOne = (s) => new StompDecoder().decode(b(s)).messages[0];

describe('StompEncoder port', () => {
  it('EncodeFrameWithNoHeadersAndNoBody', () => {
    assert.equal(stompEncode('DISCONNECT', []).toString(), 'DISCONNECT\n\n\0');
  });
  it('EncodeFrameWithHeadersThatShouldBeEscaped', () => {
    const h = new NativeHeaders().add('a:\r\n\\b', 'alpha:bravo\r\n\\');
    assert.equal(stompEncode('DISCONNECT', h).toString(), 'DISCONNECT\na\\c\\r\\n\\\\b:alpha\\cbravo\\r\\n\\\\\n\n\0');
  });
  it('EncodeFrameWithHeadersBody', () => {
    const h = new NativeHeaders().add('a', 'alpha');
    assert.equal(stompEncode('SEND', h, b('Message body')).toString(), 'SEND\na:alpha\ncontent-length:12\n\nMessage body\0');
  });
  it('EncodeFrameWithContentLengthPresent', () => {
    const h = new NativeHeaders().set('content-length', '12');
    assert.equal(stompEncode('SEND', h, b('Message body')).toString(), 'SEND\ncontent-length:12\n\nMessage body\0');
  });
  it('ConnectIsNotEscapedAndThePasscodeIsRestored', () => {
    const h = new NativeHeaders().set('login', 'a:b').set('passcode', 'PROTECTED');
    assert.equal(stompEncode('CONNECT', h, Buffer.alloc(0), { passcode: 'p:w' }).toString(),
                 'CONNECT\nlogin:a:b\npasscode:p:w\n\n\0');
  });
  it('HeartbeatIsANewline', () => assert.equal(stompEncode(HEARTBEAT).toString(), '\n'));
  it('SplitsAtTheBufferSizeLimit', () => {
    // SplittingStompEncoderTests: a frame longer than the limit becomes limit-sized pieces.
    const h = new NativeHeaders().add('a', 'alpha');
    const whole = stompEncode('SEND', h, b('Message body'));
    const pieces = splittingEncode(10, 'SEND', h, b('Message body'));
    assert.deepEqual(pieces.map((p) => p.length), [10, 10, 10, 10, whole.length - 40]);
    assert.deepEqual(Buffer.concat(pieces), whole);
    assert.equal(splittingEncode(whole.length, 'SEND', h, b('Message body')).length, 1);
  });
});

describe('StompDecoder port', () => {
  it('DecodeFrameWithCrLfEols', () => assert.equal(decodeOne('DISCONNECT\r\n\r\n\0').command, 'DISCONNECT'));
  it('DecodeFrameWithContentLength', () => {
    assert.equal(decodeOne('SEND\ncontent-length:23\n\nThe body of the message\0').payload.toString(), 'The body of the message');
  });
  it('DecodeFrameWithInvalidContentLength', () => {
    assert.equal(decodeOne('SEND\ncontent-length:-1\n\nThe body of the message\0').payload.toString(), 'The body of the message');
  });
  it('DecodeFrameWithNullOctectsInTheBody', () => {
    assert.equal(decodeOne('SEND\ncontent-length:23\n\nThe b\0dy \0f the message\0').payload.toString(), 'The b\0dy \0f the message');
  });
  it('DecodeFrameWithEscapedHeaders', () => {
    const m = decodeOne('DISCONNECT\na\\c\\r\\n\\\\b:alpha\\cbravo\\r\\n\\\\\n\n\0');
    assert.equal(m.headers.first('a:\r\n\\b'), 'alpha:bravo\r\n\\');
  });
  it('DecodeFrameWithHeaderWithBackslashValue', () => {
    assert.equal(decodeOne('CONNECT\naccept-version:1.1\nkey:\\value\n\n\0').headers.first('key'), '\\value');
  });
  it('DecodeFrameBodyNotAllowed', () => {
    assert.throws(() => decodeOne('CONNECT\naccept-version:1.2\n\nThe body of the message\0'), StompConversionException);
  });
  it('DecodeFramesWithExtraNewLines', () => {
    assert.equal(new StompDecoder().decode(b('SEND\ndestination:test\n\nbody\0\n\n\n')).messages.length, 1);
  });
  it('DecodeMultipleFramesFromSameBuffer', () => {
    const { messages } = new StompDecoder().decode(b('SEND\ndestination:test\n\nThe body of the message\0DISCONNECT\n\n\0'));
    assert.deepEqual(messages.map((m) => m.command), ['SEND', 'DISCONNECT']);
  });
  it('IncompleteFramesLeaveThePositionAtZero', () => {
    for (const s of ['MESSAG', 'SEND\ndestination', 'SEND\ndestination:test\n\nThe body',
                     'SEND\ncontent-length:23\n\nThe body of the mess']) {
      const r = new StompDecoder().decode(b(s));
      assert.deepEqual([r.messages.length, r.position], [0, 0], s);
    }
  });
  it('DecodeFrameWithIncorrectTerminator', () => {
    assert.throws(() => decodeOne('SEND\ncontent-length:23\n\nThe body of the message*'), StompConversionException);
  });
  it('DecodeHeartbeat', () => assert.equal(decodeOne('\n').command, HEARTBEAT));
  it('RejectsAnUnknownCommand', () => assert.throws(() => decodeOne('FOO\n\n\0'), StompConversionException));
  it('ParsesHeartBeatLikeLongParseLong', () => {
    assert.deepEqual(getHeartbeat(new NativeHeaders().set('heart-beat', '10000,5000')), [10000, 5000]);
    assert.deepEqual(getHeartbeat(new NativeHeaders()), [0, 0]);
    assert.throws(() => getHeartbeat(new NativeHeaders().set('heart-beat', '10000, 5000')));
  });
});

describe('BufferingStompDecoder port', () => {
  it('OneFullAndOneSplitMessageContentLength', () => {
    const d = new BufferingStompDecoder(128);
    const len = b('Payload2a-Payload2b').length;
    let messages = d.decode(b(`SEND\na:alpha\n\nPayload1\0SEND\ncontent-length:${len}\n`));
    assert.equal(messages.length, 1);
    assert.equal(d.bufferSize(), 23);
    assert.equal(d.expectedContentLength, len);
    messages = d.decode(b('\nPayload2a'));
    assert.equal(messages.length, 0);
    assert.equal(d.bufferSize(), 33);
    messages = d.decode(b('-Payload2b\0'));
    assert.equal(messages[0].payload.toString(), 'Payload2a-Payload2b');
    assert.equal(d.bufferSize(), 0);
    assert.equal(d.expectedContentLength, null);
  });
  it('OneFullAndOneSplitWithContentLengthExceedingBufferSize', () => {
    const d = new BufferingStompDecoder(128);
    assert.equal(d.decode(b('SEND\na:alpha\n\nPayload1\0SEND\ncontent-length:129\n')).length, 1);
    assert.throws(() => d.decode(b('\nPayload2a')), StompConversionException);
  });
  it('BufferSizeLimit', () => {
    assert.throws(() => new BufferingStompDecoder(10).decode(b('SEND\na:alpha\n\nMessage body')), StompConversionException);
  });
  it('ACompleteFrameInOneMessageStillCountsAgainstTheLimit', () => {
    assert.throws(() => new BufferingStompDecoder(10).decode(b('SEND\na:alpha\n\nMessage body\0')), StompConversionException);
  });
  it('IncompleteHeaderWithPartialEscapeSequence', () => {
    assert.equal(new BufferingStompDecoder(128).decode(b('SEND\na:long\\')).length, 0);
  });
  it('InvalidEscapeSequence', () => {
    assert.throws(() => new BufferingStompDecoder(128).decode(b('SEND\na:alpha\\x\\n\nMessage body\0')), StompConversionException);
  });
});
