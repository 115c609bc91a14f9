// Roomwire browser client: an ES module with no dependencies and no build
// step. It speaks Roomwire protocol version 1 (PROTOCOL.md in the Roomwire
// repository is the byte-exact specification) over WebTransport, falling back
// to WebSocket by itself:
//
//   import { connect, devToken } from "/roomwire.js";
//   const client = await connect(location.origin, { token: await devToken(location.origin) });
//   client.on("chat", (msg) => console.log(new TextDecoder().decode(msg)));
//   const room = await client.join("arena");
//   client.sendInput(new Uint8Array([127, 0]));
//
// The codec (frames, datagrams, acknowledgements, fragments, deltas) is
// exported too, as pure functions and small state machines that take time
// as an argument, so that it can be tested without a network.
//
// Payloads are Uint8Array (a string is sent as its UTF-8 bytes). A
// Uint8Array handed to a handler belongs to the handler; snapshot data and
// interpolation frames are shared with the client and must not be modified.

// ---------------------------------------------------------------------------
// Constants (PROTOCOL.md sections 3, 5 and 10)

export const VERSION = 1;
// The WebSocket subprotocol. Browsers accept only an RFC 7230 token here, so
// not the ALPN "roomwire/1": "/" is a separator (new WebSocket throws).
export const SUBPROTOCOL = "roomwire.v1";

export const Frame = Object.freeze({
  HELLO: 0x01, WELCOME: 0x02, EVENT: 0x03, REQUEST: 0x04, REPLY: 0x05,
  REPLY_ERROR: 0x06, PING: 0x07, PONG: 0x08, CLOSE: 0x09, CHALLENGE: 0x0a,
});
const frameNames = ["", "HELLO", "WELCOME", "EVENT", "REQUEST", "REPLY", "REPLY_ERROR", "PING", "PONG", "CLOSE", "CHALLENGE"];
export function frameName(t) {
  return frameNames[t] || `FrameType(0x${hex2(t)})`;
}

export const Kind = Object.freeze({ SNAPSHOT: 0x01, INPUT: 0x02, ACK: 0x03, EVENT: 0x04, RELIABLE: 0x05 });

export const CloseCode = Object.freeze({
  NORMAL: 0, GOING_AWAY: 1, PROTOCOL_ERROR: 2, FRAME_TOO_LARGE: 3, VERSION_MISMATCH: 4,
  HANDSHAKE_TIMEOUT: 5, REFUSED: 6, SLOW_CONSUMER: 7, INTERNAL: 8, KICKED: 9, TIMEOUT: 10, OVER_BUDGET: 11,
});

export const FRAME_HEADER = 4;
export const DEFAULT_MAX_FRAME = 65536;
export const MAX_FRAME_LIMIT = 0xffffff;
export const MAX_EVENT_NAME = 255;
export const MAX_CLOSE_REASON = 256;
export const CHALLENGE_LEN = 32;
export const DATAGRAM_HEADER = 9;
export const SNAPSHOT_HEADER = 7;
export const ENVELOPE_HEADER = 9;
export const MAX_DATAGRAM = 1200;
export const MIN_DATAGRAM = 256;
export const MAX_FRAGMENTS = 64;
export const MAX_SNAPSHOT = MAX_FRAGMENTS * (MAX_DATAGRAM - DATAGRAM_HEADER - SNAPSHOT_HEADER); // 75 776
export const MAX_INPUT = 128;
export const REDUNDANCY = 8;
export const SNAPSHOT_ACK = 5;
export const EVENT_OVERHEAD = 4;
export const BASELINES = 32;
export const TOKEN_WIRE = 1066;
export const TOKEN_PROOF_LABEL = "roomwire token proof";

// ---------------------------------------------------------------------------
// Errors

/** Base class of the errors this module throws. */
export class RoomwireError extends Error {
  constructor(message) {
    super(message);
    this.name = "RoomwireError";
  }
}

/** The connection ended: a close code (PROTOCOL.md 4.2) and reason, from the peer (remote) or this side. */
export class CloseError extends RoomwireError {
  constructor(code, reason, remote) {
    super(`roomwire: closed by ${remote ? "peer" : "local"}: code ${code}: ${reason}`);
    this.name = "CloseError";
    this.code = code;
    this.reason = reason;
    this.remote = !!remote;
  }
}

/** A request got no answer in time. */
export class RequestTimeoutError extends RoomwireError {
  constructor(event, timeout) {
    super(`roomwire: request timed out: "${event}" after ${timeout} ms`);
    this.name = "RequestTimeoutError";
    this.event = event;
    this.timeout = timeout;
  }
}

/** The server answered a request with REPLY_ERROR. */
export class RemoteError extends RoomwireError {
  constructor(event, message) {
    super(`roomwire: "${event}" failed on the server: ${message}`);
    this.name = "RemoteError";
    this.event = event;
    this.remoteMessage = message;
  }
}

/** A decoding error on the reliable stream: the connection closes with code (2 or 3) and this message as its reason. */
export class ProtocolError extends RoomwireError {
  constructor(code, message) {
    super(message);
    this.name = "ProtocolError";
    this.code = code;
  }
}

/** No transport could be opened; errors lists why for each one tried. */
export class ConnectError extends RoomwireError {
  constructor(message, errors) {
    super(message);
    this.name = "ConnectError";
    this.errors = errors;
  }
}

/** A join of a room that another node of a cluster owns (PROTOCOL.md 6.2): urls are the owner's, best first, and seat the connect token (its wire form) for a connection there. This client does not follow it by itself; connect to one of urls with seat as the token and join again. */
export class RedirectError extends RoomwireError {
  constructor(room, urls, seat) {
    super(`roomwire: room "${room}" is on another node (${urls.join(",")})`);
    this.name = "RedirectError";
    this.room = room;
    this.urls = urls;
    this.seat = seat;
  }
}

// parseRedirect reads the redirect form of a $join reply (6.2).
function parseRedirect(room, reply) {
  const count = reply[1] ?? 0;
  const urls = [];
  let at = 2;
  for (let i = 0; i < count; i++) {
    const len = reply[at];
    if (len === undefined || at + 1 + len > reply.length) throw new RoomwireError(`roomwire: malformed $join redirect of ${reply.length} bytes`);
    urls.push(utf8dec.decode(reply.subarray(at + 1, at + 1 + len)));
    at += 1 + len;
  }
  return new RedirectError(room, urls, reply.slice(at));
}

/** A malformed datagram (PROTOCOL.md 5.14): dropped and counted, never fatal. */
export class BadDatagram extends RoomwireError {
  constructor(message) {
    super(message);
    this.name = "BadDatagram";
  }
}

// ---------------------------------------------------------------------------
// Bytes

const utf8enc = new TextEncoder();
const utf8dec = new TextDecoder();

function hex2(n) {
  return n.toString(16).padStart(2, "0");
}

/** The bytes as lowercase hex digits. */
export function toHex(b) {
  let s = "";
  for (const x of b) s += hex2(x);
  return s;
}

/** Hex digits (white space ignored) as bytes. */
export function fromHex(s) {
  s = s.replace(/\s+/g, "");
  if (s.length % 2 !== 0 || /[^0-9a-fA-F]/.test(s)) throw new RoomwireError(`roomwire: bad hex "${s}"`);
  const b = new Uint8Array(s.length / 2);
  for (let i = 0; i < b.length; i++) b[i] = parseInt(s.substr(2 * i, 2), 16);
  return b;
}

export function fromBase64(s) {
  const bin = atob(s);
  const b = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) b[i] = bin.charCodeAt(i);
  return b;
}

export function toBase64(b) {
  let s = "";
  for (const x of b) s += String.fromCharCode(x);
  return btoa(s);
}

/** A payload as bytes: a Uint8Array as it is, other views and buffers wrapped, strings as UTF-8. */
export function bytes(p) {
  if (p === undefined || p === null) return new Uint8Array(0);
  if (p instanceof Uint8Array) return p;
  if (typeof p === "string") return utf8enc.encode(p);
  if (ArrayBuffer.isView(p)) return new Uint8Array(p.buffer, p.byteOffset, p.byteLength);
  if (p instanceof ArrayBuffer) return new Uint8Array(p);
  throw new TypeError("roomwire: payload must be a Uint8Array, an ArrayBuffer or a string");
}

export function concat(...parts) {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function view(b) {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** s as UTF-8 of at most n bytes, cut before the character that byte n belongs to. */
export function truncateUTF8(s, n) {
  const b = utf8enc.encode(s);
  if (b.length <= n) return b;
  while (n > 0 && (b[n] & 0xc0) === 0x80) n--;
  return b.slice(0, n);
}

function nameBytes(name) {
  const b = utf8enc.encode(name);
  if (b.length < 1 || b.length > MAX_EVENT_NAME) {
    throw new RoomwireError(`roomwire: event name of ${b.length} bytes not in 1..${MAX_EVENT_NAME}`);
  }
  return b;
}

// ---------------------------------------------------------------------------
// Serial-number arithmetic (PROTOCOL.md 5.13)

export function seqNewer(a, b) {
  return a !== b && ((a - b) & 0xffff) < 0x8000;
}
export function tickNewer(a, b) {
  return a !== b && ((a - b) >>> 0) < 0x80000000;
}
export function epochNewer(a, b) {
  return a !== b && ((a - b) & 0xff) < 0x80;
}

// ---------------------------------------------------------------------------
// Frames (PROTOCOL.md 3)

function frame(type, body) {
  if (body.length > MAX_FRAME_LIMIT) throw new RoomwireError(`roomwire: frame too large: body of ${body.length} bytes`);
  const f = new Uint8Array(FRAME_HEADER + body.length);
  f[0] = type;
  f[1] = body.length >>> 16;
  f[2] = (body.length >>> 8) & 0xff;
  f[3] = body.length & 0xff;
  f.set(body, FRAME_HEADER);
  return f;
}

export function encodeHello(version, auth) {
  const a = bytes(auth);
  const body = new Uint8Array(2 + a.length);
  view(body).setUint16(0, version);
  body.set(a, 2);
  return frame(Frame.HELLO, body);
}

export function encodeWelcome(version, connId, maxDatagram) {
  const body = new Uint8Array(20);
  view(body).setUint16(0, version);
  body.set(connId, 2);
  view(body).setUint16(18, maxDatagram);
  return frame(Frame.WELCOME, body);
}

export function encodeEvent(name, payload) {
  const n = nameBytes(name), p = bytes(payload);
  return frame(Frame.EVENT, concat([n.length], n, p));
}

export function encodeRequest(id, name, payload) {
  const n = nameBytes(name), p = bytes(payload);
  const body = concat([0, 0, 0, 0, n.length], n, p);
  view(body).setUint32(0, id >>> 0);
  return frame(Frame.REQUEST, body);
}

export function encodeReply(id, payload) {
  const body = concat([0, 0, 0, 0], bytes(payload));
  view(body).setUint32(0, id >>> 0);
  return frame(Frame.REPLY, body);
}

export function encodeReplyError(id, message) {
  const body = concat([0, 0, 0, 0], truncateUTF8(message, 256));
  view(body).setUint32(0, id >>> 0);
  return frame(Frame.REPLY_ERROR, body);
}

/** A PING; time is nanoseconds since the Unix epoch, a BigInt. */
export function encodePing(time) {
  const body = new Uint8Array(8);
  view(body).setBigUint64(0, BigInt.asUintN(64, time));
  return frame(Frame.PING, body);
}

export function encodePong(echo, time) {
  const body = new Uint8Array(16);
  view(body).setBigUint64(0, BigInt.asUintN(64, echo));
  view(body).setBigUint64(8, BigInt.asUintN(64, time));
  return frame(Frame.PONG, body);
}

export function encodeClose(code, reason) {
  const r = truncateUTF8(reason || "", MAX_CLOSE_REASON);
  const body = concat([code >>> 8, code & 0xff], r);
  return frame(Frame.CLOSE, body);
}

export function encodeChallenge(challenge) {
  if (challenge.length !== CHALLENGE_LEN) throw new RoomwireError("roomwire: a challenge is 32 bytes");
  return frame(Frame.CHALLENGE, challenge);
}

function truncatedFrame(t, n) {
  return new ProtocolError(CloseCode.PROTOCOL_ERROR, `reliable: truncated frame: ${frameName(t)} body of ${n} bytes`);
}
function malformed(msg) {
  return new ProtocolError(CloseCode.PROTOCOL_ERROR, `reliable: malformed frame: ${msg}`);
}

function parseName(t, b) {
  if (b.length < 1) throw truncatedFrame(t, b.length);
  const n = b[0];
  if (n === 0) throw new ProtocolError(CloseCode.PROTOCOL_ERROR, `reliable: bad event name: empty name in ${frameName(t)}`);
  if (1 + n > b.length) {
    throw new ProtocolError(CloseCode.PROTOCOL_ERROR, `reliable: truncated frame: ${frameName(t)} name of ${n} bytes, ${b.length - 1} left`);
  }
  return [utf8dec.decode(b.subarray(1, 1 + n)), b.subarray(1 + n)];
}

/**
 * Decodes a frame body of type t (PROTOCOL.md 3.3), checking every fixed
 * size (4.4). The result's byte fields alias body. Throws ProtocolError.
 */
export function parseFrame(t, body) {
  const dv = view(body);
  const f = { type: t };
  switch (t) {
    case Frame.HELLO:
      if (body.length < 2) throw truncatedFrame(t, body.length);
      f.version = dv.getUint16(0);
      f.auth = body.subarray(2);
      break;
    case Frame.WELCOME:
      if (body.length !== 20) throw malformed(`WELCOME of ${body.length} bytes, want 20`);
      f.version = dv.getUint16(0);
      f.connId = body.subarray(2, 18);
      f.maxDatagram = dv.getUint16(18);
      break;
    case Frame.EVENT:
      [f.name, f.payload] = parseName(t, body);
      break;
    case Frame.REQUEST:
      if (body.length < 4) throw truncatedFrame(t, body.length);
      f.id = dv.getUint32(0);
      [f.name, f.payload] = parseName(t, body.subarray(4));
      break;
    case Frame.REPLY:
    case Frame.REPLY_ERROR:
      if (body.length < 4) throw truncatedFrame(t, body.length);
      f.id = dv.getUint32(0);
      f.payload = body.subarray(4);
      break;
    case Frame.PING:
      if (body.length !== 8) throw malformed(`PING of ${body.length} bytes, want 8`);
      f.time = dv.getBigUint64(0);
      break;
    case Frame.PONG:
      if (body.length !== 16) throw malformed(`PONG of ${body.length} bytes, want 16`);
      f.echo = dv.getBigUint64(0);
      f.time = dv.getBigUint64(8);
      break;
    case Frame.CLOSE:
      if (body.length < 2) throw truncatedFrame(t, body.length);
      if (body.length > 2 + MAX_CLOSE_REASON) throw malformed(`CLOSE reason of ${body.length - 2} bytes > ${MAX_CLOSE_REASON}`);
      f.code = dv.getUint16(0);
      f.reason = utf8dec.decode(body.subarray(2));
      break;
    case Frame.CHALLENGE:
      if (body.length !== CHALLENGE_LEN) throw malformed(`CHALLENGE of ${body.length} bytes, want ${CHALLENGE_LEN}`);
      f.challenge = body;
      break;
    default:
      throw new ProtocolError(CloseCode.PROTOCOL_ERROR, `reliable: unknown frame type: 0x${hex2(t)}`);
  }
  return f;
}

/**
 * Splits the reliable byte stream into frames by their headers, whatever the
 * chunks it arrives in (PROTOCOL.md 3.1). The length is checked against the
 * limit as soon as the header is complete, before the body is buffered (3.4).
 */
export class FrameReader {
  constructor(maxFrame = DEFAULT_MAX_FRAME) {
    this.maxFrame = maxFrame;
    this.buf = new Uint8Array(4096);
    this.start = 0;
    this.end = 0;
  }

  /** Takes the next chunk of the stream (copied). */
  push(chunk) {
    if (this.end + chunk.length > this.buf.length) {
      const live = this.end - this.start;
      if (live + chunk.length <= this.buf.length) {
        this.buf.copyWithin(0, this.start, this.end);
      } else {
        let cap = this.buf.length;
        while (cap < live + chunk.length) cap *= 2;
        const nb = new Uint8Array(cap);
        nb.set(this.buf.subarray(this.start, this.end));
        this.buf = nb;
      }
      this.start = 0;
      this.end = live;
    }
    this.buf.set(chunk, this.end);
    this.end += chunk.length;
  }

  /** True when bytes of an incomplete frame wait. */
  get partial() {
    return this.end > this.start;
  }

  /**
   * The next whole frame as {type, body, raw} (raw: header and body; both
   * copies), or null until more bytes arrive. Throws ProtocolError (code 3)
   * for a frame over the limit.
   */
  next() {
    const live = this.end - this.start;
    if (live < FRAME_HEADER) return null;
    const b = this.buf, s = this.start;
    const t = b[s];
    const n = (b[s + 1] << 16) | (b[s + 2] << 8) | b[s + 3];
    if (n > this.maxFrame) {
      throw new ProtocolError(CloseCode.FRAME_TOO_LARGE, `reliable: frame too large: ${frameName(t)} body of ${n} bytes > limit ${this.maxFrame}`);
    }
    if (live < FRAME_HEADER + n) return null;
    const raw = b.slice(s, s + FRAME_HEADER + n);
    this.start += FRAME_HEADER + n;
    if (this.start === this.end) this.start = this.end = 0;
    return { type: t, body: raw.subarray(FRAME_HEADER), raw };
  }
}

// ---------------------------------------------------------------------------
// Datagrams (PROTOCOL.md 5)

/** A datagram with its 9-byte header (5.1); body is copied in. */
export function encodeDatagram(kind, seq, ack, ackBits, body) {
  const d = new Uint8Array(DATAGRAM_HEADER + body.length);
  const dv = view(d);
  d[0] = kind;
  dv.setUint16(1, seq);
  dv.setUint16(3, ack);
  dv.setUint32(5, ackBits >>> 0);
  d.set(body, DATAGRAM_HEADER);
  return d;
}

/**
 * Decodes a datagram header and checks what 5.14 asks of every datagram:
 * 9 .. 1200 bytes, a known kind, seq not 0. Throws BadDatagram.
 */
export function parseDatagram(d) {
  if (d.length < DATAGRAM_HEADER) throw new BadDatagram(`unreliable: datagram too short: ${d.length} bytes`);
  if (d.length > MAX_DATAGRAM) throw new BadDatagram(`unreliable: datagram too large: ${d.length} bytes > ${MAX_DATAGRAM}`);
  const dv = view(d);
  const h = { kind: d[0], seq: dv.getUint16(1), ack: dv.getUint16(3), ackBits: dv.getUint32(5), body: d.subarray(DATAGRAM_HEADER) };
  if (h.kind < Kind.SNAPSHOT || h.kind > Kind.RELIABLE) throw new BadDatagram(`unreliable: unknown datagram kind: 0x${hex2(h.kind)}`);
  if (h.seq === 0) throw new BadDatagram("unreliable: datagram seq 0");
  return h;
}

/**
 * Which of the peer's datagrams arrived (5.4, receiving): the newest seq and
 * a mask of the 32 before it, for the ack and ack bits of every datagram sent.
 */
export class Received {
  constructor() {
    this.newest = 0;
    this.bits = 0;
    this.any = false;
  }

  add(seq) {
    if (!this.any) {
      this.newest = seq;
      this.bits = 0;
      this.any = true;
    } else if (seqNewer(seq, this.newest)) {
      const d = (seq - this.newest) & 0xffff;
      if (d > 32) this.bits = 0;
      else this.bits = ((d === 32 ? 0 : this.bits << d) | (1 << (d - 1))) >>> 0;
      this.newest = seq;
    } else if (seq !== this.newest) {
      const d = (this.newest - seq) & 0xffff;
      if (d <= 32) this.bits = (this.bits | (1 << (d - 1))) >>> 0;
    }
  }

  /** [ack, ackBits] for the next datagram sent. */
  ack() {
    return [this.newest, this.bits];
  }
}

const SENT_WINDOW = 256;

/**
 * The datagrams sent (5.4, sending): numbers them 1, 2, … (never 0) and turns
 * the peer's acks into a round-trip time, a loss estimate and the tags of
 * datagrams newly acknowledged. Times are milliseconds.
 */
export class Sent {
  constructor(lossAfter = 1000) {
    this.ring = new Array(SENT_WINDOW).fill(null);
    this.nextSeq = 0;
    this.any = false;
    this.lossAfter = lossAfter;
    this.rtt = 0;
    this.haveRTT = false;
    this.rttMin = Infinity;
    this.acked = 0;
    this.lost = 0;
    this.loss = 0;
  }

  /** The seq for the next datagram, recorded as sent at now with tag (0: none). */
  next(now, tag = 0) {
    if (this.nextSeq === 0) this.nextSeq = 1;
    const seq = this.nextSeq;
    this.nextSeq = (this.nextSeq + 1) & 0xffff;
    const i = seq % SENT_WINDOW;
    const e = this.ring[i];
    if (e && !e.acked) this.#lose();
    this.ring[i] = { seq, at: now, acked: false, tag };
    this.any = true;
    return seq;
  }

  #lose() {
    this.lost++;
    this.loss += (1 - this.loss) * 0.01;
  }

  /** Applies a received header's ack and ack bits at now; onTag(tag) for each newly acknowledged tagged datagram. */
  ackWith(ack, bits, now, onTag) {
    if (!this.any || ack === 0) return;
    this.#ackOne(ack, now, onTag);
    for (let i = 0; i < 32; i++) {
      if ((bits >>> i) & 1) this.#ackOne((ack - 1 - i) & 0xffff, now, onTag);
    }
    for (let i = 0; i < SENT_WINDOW; i++) {
      const e = this.ring[i];
      if (e && !e.acked && now - e.at > this.lossAfter) {
        this.ring[i] = null;
        this.#lose();
      }
    }
  }

  #ackOne(seq, now, onTag) {
    const e = this.ring[seq % SENT_WINDOW];
    if (!e || e.acked || e.seq !== seq) return;
    e.acked = true;
    this.acked++;
    this.loss -= this.loss * 0.01;
    const sample = now - e.at;
    if (!this.haveRTT) {
      this.rtt = sample;
      this.haveRTT = true;
    } else {
      this.rtt += (sample - this.rtt) / 8;
    }
    this.rttMin = Math.min(this.rttMin, sample);
    if (e.tag && onTag) onTag(e.tag);
  }
}

/** Decodes a SNAPSHOT body's 7-byte header (5.5). Throws BadDatagram. */
export function parseSnapshotHeader(body) {
  if (body.length < SNAPSHOT_HEADER) throw new BadDatagram(`unreliable: datagram too short: snapshot body of ${body.length} bytes`);
  const h = { tick: view(body).getUint32(0), epoch: body[4], index: body[5], count: body[6] };
  if (h.count === 0 || h.count > MAX_FRAGMENTS || h.index >= h.count) {
    throw new BadDatagram(`unreliable: bad fragment header: fragment ${h.index} of ${h.count}`);
  }
  h.data = body.subarray(SNAPSHOT_HEADER);
  return h;
}

/** The SNAPSHOT datagrams of one envelope (5.5), for tests and servers. */
export function fragmentSnapshot(envelope, tick, epoch, firstSeq, maxDatagram = MAX_DATAGRAM, ack = 0, ackBits = 0) {
  const p = maxDatagram - DATAGRAM_HEADER - SNAPSHOT_HEADER;
  const count = Math.max(1, Math.ceil(envelope.length / p));
  if (count > MAX_FRAGMENTS) throw new RoomwireError(`roomwire: envelope of ${envelope.length} bytes needs ${count} > ${MAX_FRAGMENTS} fragments`);
  const out = [];
  for (let i = 0; i < count; i++) {
    const data = envelope.subarray(i * p, Math.min((i + 1) * p, envelope.length));
    const body = new Uint8Array(SNAPSHOT_HEADER + data.length);
    view(body).setUint32(0, tick >>> 0);
    body[4] = epoch;
    body[5] = i;
    body[6] = count;
    body.set(data, SNAPSHOT_HEADER);
    let seq = (firstSeq + i) & 0xffff;
    if (seq === 0) seq = 1; // not for wrapping tests
    out.push(encodeDatagram(Kind.SNAPSHOT, seq, ack, ackBits, body));
  }
  return out;
}

const REASSEMBLY_SLOTS = 4;

/**
 * Rebuilds snapshots from their fragments (5.13) in at most 4 slots, with a
 * timeout (1 s) for incomplete ones; drops fragments of older epochs and,
 * within the epoch, of ticks not newer than the newest completed. Times are
 * milliseconds.
 */
export class Reassembler {
  constructor(timeout = 1000) {
    this.timeout = timeout;
    this.slots = [];
    for (let i = 0; i < REASSEMBLY_SLOTS; i++) this.slots.push({ used: false });
    this.newest = 0;
    this.newestEpoch = 0;
    this.haveAny = false;
    this.haveEpoch = false;
    this.dropped = 0; // snapshots given up incomplete
    this.stale = 0; // fragments dropped as stale
  }

  /**
   * Takes one fragment (a parsed snapshot header with its data); returns
   * {tick, epoch, envelope} when it completes a snapshot, else null.
   */
  add(h, now) {
    if (this.haveEpoch && h.epoch !== this.newestEpoch) {
      if (!epochNewer(h.epoch, this.newestEpoch)) {
        this.stale++;
        return null;
      }
      this.reset();
    }
    this.newestEpoch = h.epoch;
    this.haveEpoch = true;
    if (this.haveAny && !tickNewer(h.tick, this.newest)) {
      this.stale++;
      return null;
    }
    if (h.count === 1) {
      this.#complete(h.tick);
      return { tick: h.tick, epoch: h.epoch, envelope: h.data };
    }
    let s = null;
    for (const c of this.slots) {
      if (c.used && now - c.started > this.timeout) {
        c.used = false;
        this.dropped++;
      }
      if (c.used && c.tick === h.tick && c.epoch === h.epoch) s = c;
    }
    if (!s) {
      s = this.#claim(h.tick);
      if (!s) {
        this.stale++;
        return null;
      }
      Object.assign(s, { used: true, tick: h.tick, epoch: h.epoch, count: h.count, frags: new Array(h.count), got: 0, started: now });
    }
    if (s.count !== h.count || s.frags[h.index]) return null; // inconsistent, or a duplicate
    s.frags[h.index] = h.data.slice();
    s.got++;
    if (s.got < s.count) return null;
    s.used = false;
    const envelope = concat(...s.frags);
    s.frags = null;
    this.#complete(h.tick);
    return { tick: h.tick, epoch: h.epoch, envelope };
  }

  #complete(tick) {
    this.newest = tick;
    this.haveAny = true;
    for (const c of this.slots) {
      if (c.used && !tickNewer(c.tick, tick)) {
        c.used = false;
        c.frags = null;
        this.dropped++;
      }
    }
  }

  #claim(tick) {
    let oldest = null;
    for (const c of this.slots) {
      if (!c.used) return c;
      if (!oldest || tickNewer(oldest.tick, c.tick)) oldest = c;
    }
    if (!tickNewer(tick, oldest.tick)) return null;
    this.dropped++;
    return oldest;
  }

  /** Forgets every snapshot in progress and the newest tick. */
  reset() {
    for (const c of this.slots) {
      c.used = false;
      c.frags = null;
    }
    this.haveAny = false;
  }
}

/** Decodes a snapshot envelope (5.6): {time (ns, BigInt), base, payload}. Throws BadDatagram. */
export function parseEnvelope(env) {
  if (env.length < ENVELOPE_HEADER) throw new BadDatagram(`unreliable: datagram too short: snapshot envelope of ${env.length} bytes`);
  return { time: view(env).getBigUint64(0), base: env[8], payload: env.subarray(ENVELOPE_HEADER) };
}

export function encodeEnvelope(timeNs, base, payload) {
  const e = new Uint8Array(ENVELOPE_HEADER + payload.length);
  view(e).setBigUint64(0, BigInt.asUintN(64, timeNs));
  e[8] = base;
  e.set(payload, ENVELOPE_HEADER);
  return e;
}

// XOR delta codec (5.7).

function appendUvarint(out, v) {
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
}

/**
 * Reads an unsigned LEB128 varint as binary.Uvarint does (at most 10 bytes,
 * value within 64 bits; non-minimal forms accepted). Returns [value, bytes]
 * or null when it is truncated or overflows. Values above 2^53 lose
 * precision, which no caller minds: they exceed every length.
 */
function readUvarint(b, i) {
  let v = 0, mul = 1;
  for (let k = 0; k < 10; k++) {
    if (i + k >= b.length) return null;
    const x = b[i + k];
    if (k === 9 && x > 1) return null;
    v += (x & 0x7f) * mul;
    if (x < 0x80) return [v, k + 1];
    mul *= 0x80;
  }
  return null;
}

function badDelta(msg) {
  return new BadDatagram(`unreliable: malformed delta: ${msg}`);
}

/**
 * The XOR delta that turns baseline into current: uvarint(len(current)),
 * then runs of uvarint(zeros) | uvarint(literalLen) | literal, a literal
 * ending only at 3 or more zero bytes of the XOR, as the Go encoder does.
 */
export function encodeDelta(baseline, current) {
  const n = current.length;
  const x = new Uint8Array(n);
  for (let i = 0; i < n; i++) x[i] = current[i] ^ (i < baseline.length ? baseline[i] : 0);
  const out = [];
  appendUvarint(out, n);
  const firstDiff = (i) => {
    while (i < n && x[i] === 0) i++;
    return i;
  };
  let pos = 0, lit = firstDiff(0);
  while (pos < n) {
    // The literal ends at the first run of 3 or more zeros, or at n.
    let end = n, next = n, i = lit;
    while (i < n) {
      while (i < n && x[i] !== 0) i++;
      if (i === n) break;
      const e = firstDiff(i);
      if (e - i >= 3) {
        end = i;
        next = e;
        break;
      }
      i = e;
    }
    appendUvarint(out, lit - pos);
    appendUvarint(out, end - lit);
    for (let k = lit; k < end; k++) out.push(x[k]);
    pos = end;
    lit = next;
  }
  return Uint8Array.from(out);
}

/**
 * The snapshot that delta turns baseline into (an empty baseline reads as
 * zeros). Checks the whole delta first: a length over MAX_SNAPSHOT, a bad
 * varint, an empty run, runs that overrun or end short, bytes after the last
 * run. Throws BadDatagram.
 */
export function decodeDelta(baseline, delta) {
  const l0 = readUvarint(delta, 0);
  if (!l0) throw badDelta("bad length varint");
  const [n, c0] = l0;
  if (n > MAX_SNAPSHOT) throw badDelta(`snapshot of ${n} bytes > ${MAX_SNAPSHOT}`);
  const runs = [];
  let i = c0;
  for (let pos = 0; pos < n;) {
    if (i >= delta.length) throw badDelta(`runs describe ${pos} of ${n} bytes`);
    const z = readUvarint(delta, i);
    if (!z) throw badDelta(`bad zeros varint at byte ${i}`);
    i += z[1];
    const l = readUvarint(delta, i);
    if (!l) throw badDelta(`bad literal length varint at byte ${i}`);
    i += l[1];
    const zeros = z[0], lit = l[0], left = n - pos;
    if (zeros === 0 && lit === 0) throw badDelta(`empty run at snapshot byte ${pos}`);
    if (zeros > left || lit > left - zeros) throw badDelta(`run of ${zeros}+${lit} bytes at snapshot byte ${pos} overruns ${n}`);
    if (lit > delta.length - i) throw badDelta(`literal of ${lit} bytes with ${delta.length - i} left`);
    runs.push(pos + zeros, i, lit);
    i += lit;
    pos += zeros + lit;
  }
  if (i !== delta.length) throw badDelta(`${delta.length - i} bytes after the last run`);
  const out = new Uint8Array(n);
  out.set(baseline.subarray(0, Math.min(n, baseline.length)));
  for (let r = 0; r < runs.length; r += 3) {
    const at = runs[r], from = runs[r + 1], lit = runs[r + 2];
    for (let k = 0; k < lit; k++) out[at + k] ^= delta[from + k];
  }
  return out;
}

// Small datagram bodies (5.10 to 5.12, 5.17).

/** A snapshot acknowledgement (5.8): epoch u8 | tick u32. */
export function encodeSnapshotAck(epoch, tick) {
  const b = new Uint8Array(SNAPSHOT_ACK);
  b[0] = epoch;
  view(b).setUint32(1, tick >>> 0);
  return b;
}

/** An INPUT body (5.10): the snapshot ack, then 1 .. 8 inputs {seq, data}, oldest first. */
export function encodeInputs(ackEpoch, ackTick, inputs) {
  if (inputs.length < 1 || inputs.length > REDUNDANCY) throw new RoomwireError(`roomwire: ${inputs.length} inputs in one datagram, want 1..${REDUNDANCY}`);
  const parts = [encodeSnapshotAck(ackEpoch, ackTick), [inputs.length]];
  for (const { seq, data } of inputs) {
    if (data.length > MAX_INPUT) throw new RoomwireError(`roomwire: input of ${data.length} bytes > ${MAX_INPUT}`);
    const h = new Uint8Array(5);
    view(h).setUint32(0, seq >>> 0);
    h[4] = data.length;
    parts.push(h, data);
  }
  return concat(...parts);
}

/** Decodes an INPUT body: {ackEpoch, ackTick, inputs: [{seq, data}]}. Throws BadDatagram. */
export function parseInputs(body) {
  if (body.length < SNAPSHOT_ACK + 1) throw new BadDatagram(`unreliable: datagram too short: input of ${body.length} bytes`);
  const dv = view(body);
  const n = body[5];
  if (n === 0 || n > REDUNDANCY) throw new BadDatagram("unreliable: datagram too short: input count");
  const inputs = [];
  let i = 6;
  for (let k = 0; k < n; k++) {
    if (body.length < i + 5 || body.length < i + 5 + body[i + 4]) throw new BadDatagram(`unreliable: input ${k} of ${n} cut short`);
    if (body[i + 4] > MAX_INPUT) throw new BadDatagram(`unreliable: input of ${body[i + 4]} bytes > ${MAX_INPUT}`);
    inputs.push({ seq: dv.getUint32(i), data: body.subarray(i + 5, i + 5 + body[i + 4]) });
    i += 5 + body[i + 4];
  }
  if (i !== body.length) throw new BadDatagram(`unreliable: ${body.length - i} bytes after the inputs`);
  return { ackEpoch: body[0], ackTick: dv.getUint32(1), inputs };
}

/** An EVENT datagram body (5.12). */
export function encodeEventBody(sequenced, seq, name, payload) {
  const n = nameBytes(name), p = bytes(payload);
  const b = concat([sequenced ? 1 : 0, (seq >>> 8) & 0xff, seq & 0xff, n.length], n, p);
  return b;
}

/** Decodes an EVENT datagram body: {sequenced, seq, name, payload}. Throws BadDatagram. */
export function parseEventBody(body) {
  if (body.length < EVENT_OVERHEAD) throw new BadDatagram(`unreliable: datagram too short: event of ${body.length} bytes`);
  const n = body[3];
  if (n === 0 || body.length < EVENT_OVERHEAD + n) throw new BadDatagram(`unreliable: datagram too short: event name of ${n} bytes`);
  return {
    sequenced: (body[0] & 1) !== 0,
    seq: view(body).getUint16(1),
    name: utf8dec.decode(body.subarray(4, 4 + n)),
    payload: body.subarray(4 + n),
  };
}

/** A RELIABLE body (5.17): copies of whole frames numbered first, first + 1, …. */
export function encodeReliableBody(first, frames) {
  if (frames.length < 1 || frames.length > 255) throw new RoomwireError("roomwire: 1..255 frames in a RELIABLE datagram");
  const h = new Uint8Array(5);
  view(h).setUint32(0, first >>> 0);
  h[4] = frames.length;
  return concat(h, ...frames);
}

/** Decodes a RELIABLE body: {first, frames: [{num, type, body, raw}]}. Throws BadDatagram. */
export function parseReliableBody(body, maxFrame = DEFAULT_MAX_FRAME) {
  if (body.length < 5) throw new BadDatagram(`unreliable: datagram too short: RELIABLE body of ${body.length} bytes`);
  const first = view(body).getUint32(0), count = body[4];
  if (count === 0) throw new BadDatagram("unreliable: RELIABLE datagram of no frames");
  const frames = [];
  let i = 5;
  for (let k = 0; k < count; k++) {
    if (body.length < i + FRAME_HEADER) throw new BadDatagram(`unreliable: RELIABLE frame ${k} cut short`);
    const n = (body[i + 1] << 16) | (body[i + 2] << 8) | body[i + 3];
    if (n > maxFrame) throw new BadDatagram(`unreliable: RELIABLE frame of ${n} bytes > limit ${maxFrame}`);
    if (body.length < i + FRAME_HEADER + n) throw new BadDatagram(`unreliable: RELIABLE frame ${k} cut short`);
    const raw = body.subarray(i, i + FRAME_HEADER + n);
    frames.push({ num: (first + k) >>> 0, type: raw[0], body: raw.subarray(FRAME_HEADER), raw });
    i += FRAME_HEADER + n;
  }
  if (i !== body.length) throw new BadDatagram(`unreliable: ${body.length - i} bytes after the last RELIABLE frame`);
  return { first, frames };
}

// ---------------------------------------------------------------------------
// Connect tokens (PROTOCOL.md 7.2, 7.7)

/**
 * A connect token as the client needs it: {wire (1066 bytes),
 * clientToServerKey, serverToClientKey (32 bytes each), expires (Unix
 * seconds)}. Takes that object, or the JSON a matchmaker (or /dev-token)
 * hands out: {"wire", "client_to_server_key", "server_to_client_key"} in
 * base64 and "expires".
 */
export function parseToken(t) {
  if (!t) throw new RoomwireError("roomwire: no token");
  const get = (a, b) => (t[a] !== undefined ? t[a] : t[b]);
  const asBytes = (v) => (typeof v === "string" ? fromBase64(v) : bytes(v));
  const tok = {
    wire: asBytes(get("wire", "wire")),
    clientToServerKey: asBytes(get("clientToServerKey", "client_to_server_key")),
    serverToClientKey: asBytes(get("serverToClientKey", "server_to_client_key") ?? new Uint8Array(32)),
    expires: Number(t.expires ?? 0),
  };
  if (tok.wire.length !== TOKEN_WIRE) throw new RoomwireError(`roomwire: token wire form of ${tok.wire.length} bytes, want ${TOKEN_WIRE}`);
  if (tok.clientToServerKey.length !== 32) throw new RoomwireError("roomwire: token client→server key must be 32 bytes");
  return tok;
}

/** proof = HMAC-SHA256(key: the token's client→server key, message: "roomwire token proof" | binding), with WebCrypto. */
export async function tokenProof(clientToServerKey, binding) {
  const key = await crypto.subtle.importKey("raw", clientToServerKey, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const sig = await crypto.subtle.sign("HMAC", key, concat(utf8enc.encode(TOKEN_PROOF_LABEL), binding));
  return new Uint8Array(sig);
}

/** The HELLO auth bytes on a challenged transport (7.7): wire form | proof | application bytes. */
export async function tokenAuth(token, challenge, appAuth) {
  const t = parseToken(token);
  return concat(t.wire, await tokenProof(t.clientToServerKey, challenge), bytes(appAuth));
}

/** Fetches a development token from a game server's /dev-token (its -dev mode). */
export async function devToken(origin, fetchImpl = globalThis.fetch) {
  const res = await fetchImpl(new URL("/dev-token", origin).href, { cache: "no-store" });
  if (!res.ok) throw new RoomwireError(`roomwire: /dev-token: HTTP ${res.status}`);
  return parseToken(await res.json());
}

// ---------------------------------------------------------------------------
// Clock and interpolation (PROTOCOL.md 5.16). Local times are milliseconds
// on a monotonic clock (performance.now()); server times are milliseconds
// since the Unix epoch (envelope times divided by 10^6).

function wallNs() {
  return BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));
}
function nsToMs(ns) {
  return Number(ns / 1000n) / 1000;
}

/** Estimates the server's clock from PONGs: a weighted mean of the offsets of the least delayed of the last 32 samples. */
export class ClockSync {
  constructor() {
    this.samples = [];
    this.next = 0;
    this.offset = 0; // server ms − local epoch ms
    this.lastRTT = 0;
    this.minRTT = Infinity;
  }

  /** A PONG: sent and now are local epoch ms, server is the server's epoch ms. */
  add(sent, server, now) {
    const rtt = now - sent;
    if (rtt < 0) return;
    const s = { rtt, offset: server + rtt / 2 - now };
    if (this.samples.length < 32) this.samples.push(s);
    else this.samples[this.next] = s;
    this.next = (this.next + 1) % 32;
    this.lastRTT = rtt;
    this.minRTT = Math.min(this.minRTT, rtt);
    const least = Math.min(...this.samples.map((x) => x.rtt));
    const tol = Math.max(5, least / 4);
    let sum = 0, weights = 0;
    for (const x of this.samples) {
      const e = x.rtt - least;
      if (e > tol) continue;
      const k = 1 + e / 5;
      sum += x.offset / (k * k);
      weights += 1 / (k * k);
    }
    this.offset = sum / weights;
  }

  get ready() {
    return this.samples.length > 0;
  }
}

const PLAYOUT_WINDOW = 128, UNDERRUN_TARGET = 0.004, LOSS_PRIOR = 0.25, MAX_GAP_LOSS = 4, MAX_COVER = 8;
const SLEW_RATE = 0.1, SLEW_TAU = 500, JUMP_LAG = 250, DEFAULT_INTERVAL = 1000 / 30;

/** The intervals of cover that keep an underrun at probability 0.004 under snapshot loss p (5.16). */
export function lossCover(p) {
  if (p <= UNDERRUN_TARGET) return 0;
  let a = p;
  for (let m = 0; m < MAX_COVER; m++) {
    const b = a * p;
    if (b <= UNDERRUN_TARGET) return m + (a - UNDERRUN_TARGET) / (a - b);
    a = b;
  }
  return MAX_COVER;
}

/**
 * The render clock of a snapshot stream (5.16): it renders relative to the
 * stream's arrivals, never the server's clock, so latency never adds to the
 * buffer; the delay covers measured lateness and loss.
 */
export class Playout {
  constructor() {
    this.win = [];
    this.next = 0;
    this.base = 0;
    this.prevTime = 0;
    this.prevTick = 0;
    this.tickMs = 0;
    this.stream = 0;
    this.interval = DEFAULT_INTERVAL;
    this.late = 0;
    this.loss = 0;
    this.delay = 0;
    this.started = false;
    this.renderOff = 0;
    this.lastLocal = 0;
    this.lastRender = -Infinity;
  }

  /** A decoded snapshot of tick with server time t arrived at local time now; first: the first of its epoch. */
  arrive(tick, t, now, first) {
    if (this.win.length === 0) this.base = now;
    const local = now - this.base;
    let ticks = 0;
    const d = (tick - this.prevTick) >>> 0;
    if (!first && t > this.prevTime && d > 0 && d < 0x80000000) {
      ticks = d;
      const per = (t - this.prevTime) / d;
      this.tickMs = this.tickMs === 0 ? per : this.tickMs + (per - this.tickMs) / 16;
    }
    this.prevTime = t;
    this.prevTick = tick;
    const a = { s: t - local, ticks };
    if (this.win.length < PLAYOUT_WINDOW) this.win.push(a);
    else this.win[this.next] = a;
    this.next = (this.next + 1) % PLAYOUT_WINDOW;
    this.#update();
  }

  #update() {
    let stride = 0;
    for (const a of this.win) if (a.ticks > 0 && (stride === 0 || a.ticks < stride)) stride = a.ticks;
    let got = 0, lost = 0;
    const s = new Float64Array(this.win.length);
    this.win.forEach((a, i) => {
      s[i] = a.s;
      if (a.ticks > 0) {
        got++;
        lost += Math.min(Math.floor((a.ticks + Math.floor(stride / 2)) / stride) - 1, MAX_GAP_LOSS);
      }
    });
    s.sort();
    this.stream = s[s.length - 1];
    this.late = this.stream - s[Math.floor((s.length + 99) / 100) - 1];
    this.loss = (lost + LOSS_PRIOR) / (lost + got + 1);
    this.interval = stride > 0 && this.tickMs > 0 ? this.tickMs * stride : DEFAULT_INTERVAL;
    this.delay = this.interval * (1 + lossCover(this.loss)) + this.late;
  }

  /** Advances the render clock to local time now; returns the render time (server ms). */
  render(now) {
    const local = now - this.base;
    const target = this.stream - this.delay;
    if (!this.started) {
      this.started = true;
      this.renderOff = target;
    } else if (target - this.renderOff > JUMP_LAG) {
      this.renderOff = target;
    } else if (local > this.lastLocal) {
      const dt = local - this.lastLocal;
      let step = (target - this.renderOff) * Math.min(dt / SLEW_TAU, 1);
      step = Math.max(-SLEW_RATE * dt, Math.min(SLEW_RATE * dt, step));
      this.renderOff += step;
    }
    this.lastLocal = Math.max(this.lastLocal, local);
    const r = Math.max(local + this.renderOff, this.lastRender);
    this.lastRender = r;
    return r;
  }

  /** The stream clock at local time now: the server time of the snapshots arriving now, when they are not late. */
  streamTime(now) {
    return now - this.base + this.stream;
  }
}

/**
 * The client's snapshots (5.8): the last 32 decoded in the current epoch,
 * baselines for deltas and frames for interpolation.
 */
export class SnapshotStore {
  constructor() {
    this.ring = new Array(BASELINES).fill(null);
    this.epoch = 0;
    this.newest = null;
    this.acked = [0, 0];
    this.play = new Playout();
  }

  /**
   * Decodes a reassembled envelope of tick and epoch at local time now.
   * Returns {frame, delta} when it decoded, {undecodable: true} when its
   * baseline is not held. Throws BadDatagram for an envelope or delta that
   * does not decode.
   */
  add(tick, epoch, envelope, now) {
    const e = parseEnvelope(envelope);
    if (epoch !== this.epoch || this.newest === null) {
      this.ring.fill(null);
      this.epoch = epoch;
      this.newest = null;
    }
    let data;
    if (e.base !== 0) {
      const bt = (tick - e.base) >>> 0;
      const base = this.ring[bt % BASELINES];
      if (!base || base.tick !== bt) return { undecodable: true };
      data = decodeDelta(base.data, e.payload);
    } else {
      data = e.payload.slice();
    }
    const f = { tick, epoch, timeNs: e.time, time: nsToMs(e.time), data };
    this.play.arrive(tick, f.time, now, this.newest === null);
    this.ring[tick % BASELINES] = f;
    this.newest = f;
    this.acked = [epoch, tick];
    return { frame: f, delta: e.base !== 0 };
  }

  /** The snapshot acknowledgement: [epoch, tick] of the newest decoded, [0, 0] before the first. */
  ack() {
    return this.acked;
  }

  /** The two held snapshots around the render time for local time now (5.16), or null before the first. */
  interpolate(now) {
    if (!this.newest) return null;
    const render = this.play.render(now);
    let from = null, to = null;
    for (const s of this.ring) {
      if (!s) continue;
      if (s.time <= render && (!from || s.time > from.time)) from = s;
      if (s.time > render && (!to || s.time < to.time)) to = s;
    }
    const out = { from, to, alpha: 0, renderTime: render, delay: this.newest.time - render, target: this.play.delay, underrun: false };
    if (!to) {
      out.from = out.to = this.newest;
      out.alpha = 1;
      out.underrun = true;
    } else if (!from) {
      out.from = to;
    } else {
      out.alpha = (render - from.time) / (to.time - from.time);
    }
    return out;
  }
}

// ---------------------------------------------------------------------------
// Transports. A session carries the reliable stream (whole frames out, any
// chunks in) and datagrams:
//   session.kind, session.maxDatagram, session.sendReliable(bytes),
//   session.sendDatagram(bytes) → bool, session.close(code, reason),
//   session.attach({onReliable(chunk), onDatagram(d), onClosed(code, reason),
//                   onError(code, reason)})
// onClosed: the session ended; onError: the peer broke the binding, and the
// client closes with code. What arrives before attach (a server speaks
// first: its CHALLENGE may come before the client is ready) is kept and
// handed over, in order, by attach.

/** The part of a session that keeps what arrives until a client attaches. */
export function sessionBase(kind, url, maxDatagram) {
  const early = [];
  let handlers = null;
  return {
    kind,
    url,
    maxDatagram,
    attach(h) {
      handlers = h;
      for (const [what, args] of early.splice(0)) handlers[what](...args);
    },
    deliver(what, ...args) {
      if (handlers) handlers[what](...args);
      else early.push([what, args]);
    },
  };
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new RoomwireError(`roomwire: ${what} timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** The buffered WebSocket bytes beyond which datagrams are dropped, as a congested path drops them. */
const WS_DATAGRAM_BACKLOG = 16 * 1024;

/**
 * The Roomwire close code for a WebSocket close status without a CLOSE
 * frame (PROTOCOL.md 12.4): 4000 + code from a Roomwire peer; otherwise
 * 1000 and 1005 are 0, 1001 is 1, 1009 is 3, 1002, 1003, 1007 and 1008 are
 * 2, and any other (1006: the connection was lost) is 8.
 */
export function wsCloseCode(status) {
  if (status >= 4000 && status <= 4999) return status - 4000;
  switch (status) {
    case 1000: case 1005: return CloseCode.NORMAL;
    case 1001: return CloseCode.GOING_AWAY;
    case 1009: return CloseCode.FRAME_TOO_LARGE;
    case 1002: case 1003: case 1007: case 1008: return CloseCode.PROTOCOL_ERROR;
  }
  return CloseCode.INTERNAL;
}

/**
 * Opens the WebSocket binding (PROTOCOL.md 12): subprotocol SUBPROTOCOL,
 * binary messages of a channel byte (0x00 reliable bytes, 0x01 one
 * datagram) and the payload; a close status of 4000 + the Roomwire close
 * code. maxFrame is the client's frame limit: a reliable message over it
 * + 5 bytes closes with code 3.
 */
export async function openWebSocket(url, { timeout = 5000, maxFrame = DEFAULT_MAX_FRAME, WebSocket: WS = globalThis.WebSocket } = {}) {
  if (!WS) throw new RoomwireError("roomwire: no WebSocket in this environment");
  const ws = new WS(url, SUBPROTOCOL);
  ws.binaryType = "arraybuffer";
  await withTimeout(new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new RoomwireError(`roomwire: WebSocket ${url} failed to open`));
    ws.onclose = (e) => reject(new RoomwireError(`roomwire: WebSocket ${url} closed while opening: ${e.code} ${e.reason}`));
  }), timeout, `WebSocket ${url}`).catch((err) => {
    try { ws.close(); } catch { /* already closed */ }
    throw err;
  });
  if (ws.protocol !== SUBPROTOCOL) {
    ws.close(4000 + CloseCode.PROTOCOL_ERROR, `subprotocol ${SUBPROTOCOL} not selected`);
    throw new RoomwireError(`roomwire: WebSocket server chose subprotocol "${ws.protocol}", want ${SUBPROTOCOL}`);
  }
  let ended = false;
  const s = Object.assign(sessionBase("websocket", url, MAX_DATAGRAM), {
    sendReliable(b) {
      if (ws.readyState === 1) ws.send(concat([0], b));
    },
    sendDatagram(d) {
      if (ws.readyState !== 1 || ws.bufferedAmount > WS_DATAGRAM_BACKLOG) return false;
      ws.send(concat([1], d));
      return true;
    },
    close(code, reason) {
      if (ended) return;
      ended = true;
      try {
        ws.close(code <= 999 ? 4000 + code : 4000 + CloseCode.INTERNAL, utf8dec.decode(truncateUTF8(reason || "", 123)));
      } catch {
        ws.close();
      }
    },
  });
  const fail = (code, reason) => s.deliver("onError", code, reason);
  ws.onmessage = (e) => {
    if (typeof e.data === "string") return fail(CloseCode.PROTOCOL_ERROR, "websocket: text message");
    const b = new Uint8Array(e.data);
    if (b.length === 0) return fail(CloseCode.PROTOCOL_ERROR, "websocket: empty message");
    if (b[0] === 0) {
      if (b.length > maxFrame + 5) return fail(CloseCode.FRAME_TOO_LARGE, `websocket: reliable message of ${b.length} bytes > ${maxFrame + 5}`);
      s.deliver("onReliable", b.subarray(1));
    } else if (b[0] === 1) {
      if (b.length > MAX_DATAGRAM + 1) return fail(CloseCode.PROTOCOL_ERROR, `websocket: datagram message of ${b.length} bytes > ${MAX_DATAGRAM + 1}`);
      s.deliver("onDatagram", b.subarray(1));
    } else {
      fail(CloseCode.PROTOCOL_ERROR, `websocket: unknown channel 0x${hex2(b[0])}`);
    }
  };
  ws.onerror = () => {};
  ws.onclose = (e) => {
    ended = true;
    let reason = e.reason;
    if (e.code === 1006) reason = "websocket: connection lost";
    else if (e.code < 4000 || e.code > 4999) reason = `websocket closed: ${e.code} ${e.reason}`.trim();
    s.deliver("onClosed", wsCloseCode(e.code), reason);
  };
  return s;
}

/**
 * Opens the WebTransport binding: one bidirectional stream for the reliable
 * channel, Roomwire datagrams as WebTransport datagrams. hash, when given, is
 * the SHA-256 of the server's certificate (serverCertificateHashes).
 */
export async function openWebTransport(url, hash, { timeout = 3000 } = {}) {
  if (typeof WebTransport === "undefined") throw new RoomwireError("roomwire: WebTransport is not available in this browser");
  const opts = { requireUnreliable: true };
  if (hash && hash.length) opts.serverCertificateHashes = [{ algorithm: "sha-256", value: hash }];
  const wt = new WebTransport(url, opts);
  wt.closed.catch(() => {});
  let stream;
  try {
    await withTimeout(wt.ready, timeout, `WebTransport ${url}`);
    stream = await withTimeout(wt.createBidirectionalStream(), timeout, "WebTransport stream");
  } catch (err) {
    try { wt.close(); } catch { /* not open */ }
    throw new RoomwireError(`roomwire: WebTransport ${url}: ${err && err.message ? err.message : err}`);
  }
  const writer = stream.writable.getWriter();
  const dgWriter = wt.datagrams.writable.getWriter();
  let ended = false;
  let lastWrite = Promise.resolve();
  const s = Object.assign(sessionBase("webtransport", url, Math.min(MAX_DATAGRAM, wt.datagrams.maxDatagramSize || MAX_DATAGRAM)), {
    sendReliable(b) {
      if (!ended) lastWrite = writer.write(b).catch(() => {});
    },
    sendDatagram(d) {
      if (ended || d.length > s.maxDatagram) return false;
      dgWriter.write(d).catch(() => {});
      return true;
    },
    close(code, reason) {
      if (ended) return;
      ended = true;
      // Let the frames written so far (the CLOSE among them) leave first,
      // for at most 250 ms (PROTOCOL.md 4.1).
      withTimeout(lastWrite, 250, "flush").catch(() => {}).finally(() => {
        try {
          wt.close({ closeCode: code, reason: utf8dec.decode(truncateUTF8(reason || "", 256)) });
        } catch { /* closed already */ }
      });
    },
  });
  const end = (code, reason) => {
    ended = true;
    s.deliver("onClosed", code, reason);
  };
  (async () => {
    const r = stream.readable.getReader();
    for (;;) {
      const { value, done } = await r.read();
      if (done) return end(CloseCode.NORMAL, "stream ended");
      s.deliver("onReliable", value);
    }
  })().catch(() => {});
  (async () => {
    const r = wt.datagrams.readable.getReader();
    for (;;) {
      const { value, done } = await r.read();
      if (done) return;
      s.deliver("onDatagram", value);
    }
  })().catch(() => {});
  // Without a CLOSE frame first, the session close says why (PROTOCOL.md
  // 12.4): its code, unless above 65535 (then 2), and reason; a session
  // that ends without one, code 8.
  wt.closed.then(
    (info) => {
      const code = info.closeCode ?? CloseCode.NORMAL;
      end(code > 0xffff ? CloseCode.PROTOCOL_ERROR : code, info.reason || "webtransport session closed");
    },
    (err) => end(CloseCode.INTERNAL, `webtransport: ${err && err.message ? err.message : err}`),
  );
  return s;
}

// ---------------------------------------------------------------------------
// The client

const CLOCK_BURST = 16, CLOCK_BURST_GAP = 100, CLOCK_PERIOD = 1000;
const MAX_SEQUENCED_NAMES = 256;
const EARLY_DATAGRAMS = 64;

/**
 * A connection to a Roomwire server. Use connect() to open one. Handlers
 * registered with on() run for reliable events (EVENT frames) and unreliable
 * ones (EVENT datagrams) alike.
 */
export class Client {
  constructor(opts = {}) {
    this.opts = opts;
    this.maxFrame = opts.maxFrame || DEFAULT_MAX_FRAME;
    this.requestTimeout = opts.requestTimeout || 10000;
    this.id = null; // 32 hex digits, after connect
    this.idBytes = null;
    this.room = null; // the $join reply, while in a game room
    this.transport = null;
    this.maxDatagram = MAX_DATAGRAM;
    this.fallback = []; // why transports before this one were not used

    this.handlers = new Map();
    this.snapshotHandler = null;
    this.disconnectHandlers = [];
    this.pending = new Map();
    this.nextRequest = 0;
    this.reader = new FrameReader(this.maxFrame);
    this.state = "new"; // "challenge", "welcome", "open", "closed"
    this.closeError = null;
    this.early = [];

    this.received = new Received();
    this.sent = new Sent();
    this.reasm = new Reassembler();
    this.snaps = new SnapshotStore();
    this.clock = new ClockSync();
    this.inputs = { seq: 0, acked: 0, ring: new Array(REDUNDANCY).fill(null), sent: false };
    this.evSent = new Map();
    this.evLatest = new Map();
    this.timers = new Set();
    this.arrivals = [];
    this.counts = {
      framesSent: 0, framesReceived: 0, bytesSent: 0, bytesReceived: 0,
      datagramsSent: 0, datagramsReceived: 0, datagramsDropped: 0, datagramsBad: 0, datagramsStale: 0,
      snapshotsReceived: 0, deltasReceived: 0, wholeReceived: 0, snapshotsUndecodable: 0,
      eventsReceived: 0, unhandled: 0, inputsSent: 0, interpFrames: 0, interpUnderruns: 0,
      copiesIgnored: 0, lastTick: 0, lastDelay: 0, lastTarget: 0,
    };
  }

  // -- public API -----------------------------------------------------------

  /** Sets the handler for an event name (replacing any earlier one); fn(payload, name). */
  on(event, fn) {
    this.handlers.set(event, fn);
    return this;
  }

  /** Removes the handler for an event name. */
  off(event) {
    this.handlers.delete(event);
    return this;
  }

  /** Sends a reliable, ordered event. */
  emit(event, payload) {
    this.#check();
    const f = encodeEvent(event, payload);
    this.#checkFrame(f, event);
    this.#sendFrame(f);
  }

  /** Sends an event as a datagram: it may be lost, duplicated or reordered. */
  emitUnreliable(event, payload) {
    this.#emitDatagram(event, payload, false);
  }

  /** Sends an event as a sequenced datagram: the server drops one older than the newest of its name. */
  emitLatest(event, payload) {
    this.#emitDatagram(event, payload, true);
  }

  /**
   * Sends a request and resolves with the reply's payload. Rejects with
   * RequestTimeoutError after opts.timeout ms (default 10 s), RemoteError when
   * the server's handler failed, CloseError when the connection ends.
   */
  request(event, payload, { timeout = this.requestTimeout } = {}) {
    return new Promise((resolve, reject) => {
      this.#check();
      this.nextRequest = (this.nextRequest + 1) >>> 0;
      const id = this.nextRequest;
      const f = encodeRequest(id, event, payload);
      this.#checkFrame(f, event);
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RequestTimeoutError(event, timeout));
      }, timeout);
      this.pending.set(id, { event, resolve, reject, timer });
      this.#sendFrame(f);
    });
  }

  /** Joins a game room of kind (6.2): the named one, or with no name any with a free place. Resolves with {name, tickRate, maxMembers, members}. */
  async join(kind, name = "") {
    const k = utf8enc.encode(kind), n = utf8enc.encode(name);
    if (k.length < 1 || k.length > 255 || n.length > 255) throw new RoomwireError("roomwire: room kind 1..255 bytes, name 0..255");
    const reply = await this.request("$join", concat([k.length], k, n));
    if (reply.length > 0 && reply[0] === 0) throw parseRedirect(name, reply);
    const nl = reply[0];
    if (reply.length !== 1 + nl + 5) throw new RoomwireError(`roomwire: $join reply of ${reply.length} bytes`);
    const dv = view(reply);
    this.room = {
      kind,
      name: utf8dec.decode(reply.subarray(1, 1 + nl)),
      tickRate: reply[1 + nl],
      maxMembers: dv.getUint16(2 + nl),
      members: dv.getUint16(4 + nl),
    };
    return this.room;
  }

  /** Leaves the game room (6.3). */
  async leave() {
    await this.request("$leave", new Uint8Array(0));
    this.room = null;
  }

  /** Sets the handler for decoded snapshots: fn(tick, data, frame). data must not be modified. */
  onSnapshot(fn) {
    this.snapshotHandler = fn;
    return this;
  }

  /** Adds a callback for the end of the connection: fn(code, reason, remote). */
  onDisconnect(fn) {
    if (this.state === "closed") queueMicrotask(() => fn(this.closeError.code, this.closeError.reason, this.closeError.remote));
    else this.disconnectHandlers.push(fn);
    return this;
  }

  /**
   * Sends one input (at most 128 bytes) with every earlier one not yet known
   * to have arrived, at most 8 in all (5.10). Never blocks.
   */
  sendInput(data) {
    this.#check();
    const d = bytes(data);
    if (d.length > MAX_INPUT) throw new RoomwireError(`roomwire: input of ${d.length} bytes > ${MAX_INPUT}`);
    const h = this.inputs;
    h.seq = (h.seq + 1) >>> 0;
    h.ring[h.seq % REDUNDANCY] = d.slice();
    this.#putInputs();
  }

  /** The two snapshots around the render time at local time now (performance.now()), or null before the first snapshot. */
  interpolate(now = performance.now()) {
    const r = this.snaps.interpolate(now);
    if (!r) return null;
    this.counts.interpFrames++;
    if (r.underrun) this.counts.interpUnderruns++;
    this.counts.lastDelay = r.delay;
    this.counts.lastTarget = r.target;
    return r;
  }

  /** The estimated server clock (Unix ms) at local time now, from PING/PONG. */
  serverTime(now = performance.now()) {
    if (this.clock.ready) return performance.timeOrigin + now + this.clock.offset;
    if (this.snaps.newest) return this.snaps.play.streamTime(now);
    return performance.timeOrigin + now;
  }

  /** The connection's figures. Times are milliseconds. */
  stats() {
    const now = performance.now();
    const recent = this.arrivals.filter((t) => now - t <= 2000);
    let rate = 0;
    if (recent.length >= 2) rate = (recent.length - 1) / ((recent[recent.length - 1] - recent[0]) / 1000);
    return {
      transport: this.transport,
      state: this.state,
      id: this.id,
      room: this.room ? this.room.name : null,
      maxDatagram: this.maxDatagram,
      fallback: this.fallback.slice(),
      rtt: this.sent.rtt,
      rttMin: Number.isFinite(this.sent.rttMin) ? this.sent.rttMin : 0,
      pingRTT: this.clock.lastRTT,
      pingRTTMin: Number.isFinite(this.clock.minRTT) ? this.clock.minRTT : 0,
      loss: this.sent.loss,
      datagramsAcked: this.sent.acked,
      datagramsLost: this.sent.lost,
      snapshotRate: rate,
      snapshotsIncomplete: this.reasm.dropped,
      epoch: this.snaps.epoch,
      inputsAcked: this.inputs.acked,
      clockOffset: this.clock.offset,
      interpDelay: this.counts.lastDelay,
      interpTarget: this.counts.lastTarget,
      ...this.counts,
    };
  }

  /** Closes the connection normally (code 0, "client closed"). */
  close(reason = "client closed") {
    this.#close(CloseCode.NORMAL, reason, false, true);
  }

  // -- connecting -----------------------------------------------------------

  /**
   * Runs the handshake over an open session (PROTOCOL.md 2, 7.7): waits for
   * the CHALLENGE, sends the HELLO with the token's proof bound to it, and
   * resolves once WELCOME arrives. Rejects with the CloseError of a refusal.
   */
  open(session) {
    this.session = session;
    this.transport = session.kind;
    this.state = "challenge";
    return new Promise((resolve, reject) => {
      this.welcomed = { resolve, reject };
      const timeout = this.opts.connectTimeout || 10000;
      this.#timer(() => {
        if (this.state === "challenge" || this.state === "welcome") this.#close(CloseCode.NORMAL, "connect cancelled", false, true);
      }, timeout);
      session.attach({
        onReliable: (chunk) => this.#onReliable(chunk),
        onDatagram: (d) => this.#onDatagram(d),
        onClosed: (code, reason) => this.#close(code, reason, true, false),
        onError: (code, reason) => this.#close(code, reason, false, true),
      });
    });
  }

  // -- reliable channel -----------------------------------------------------

  #onReliable(chunk) {
    if (this.state === "closed") return;
    this.counts.bytesReceived += chunk.length;
    this.reader.push(chunk);
    this.#pump();
  }

  #pump() {
    while (this.state !== "closed" && !this.busy) {
      let f;
      try {
        const raw = this.reader.next();
        if (!raw) return;
        this.counts.framesReceived++;
        f = parseFrame(raw.type, raw.body);
      } catch (err) {
        if (err instanceof ProtocolError) return this.#close(err.code, err.message, false, true);
        throw err;
      }
      this.#handleFrame(f);
    }
  }

  #handleFrame(f) {
    if (f.type === Frame.CLOSE) return this.#close(f.code, f.reason, true, false);
    switch (this.state) {
      case "challenge":
        if (f.type !== Frame.CHALLENGE) {
          return this.#close(CloseCode.PROTOCOL_ERROR, `first frame is ${frameName(f.type)}, want CHALLENGE`, false, true);
        }
        this.busy = true;
        this.#hello(f.challenge).then(
          () => {
            this.busy = false;
            this.state = this.state === "closed" ? "closed" : "welcome";
            this.#pump();
          },
          (err) => {
            this.busy = false;
            this.#close(CloseCode.INTERNAL, `no token binding: ${err.message}`, false, true);
          },
        );
        return;
      case "welcome":
        if (f.type !== Frame.WELCOME) {
          return this.#close(CloseCode.PROTOCOL_ERROR, `first frame is ${frameName(f.type)}, want WELCOME`, false, true);
        }
        if (f.version !== VERSION) return this.#close(CloseCode.VERSION_MISMATCH, `server speaks version ${f.version}, client ${VERSION}`, false, true);
        if (f.maxDatagram < MIN_DATAGRAM) return this.#close(CloseCode.PROTOCOL_ERROR, `server datagram limit ${f.maxDatagram} < ${MIN_DATAGRAM}`, false, true);
        return this.#welcome(f);
    }
    switch (f.type) {
      case Frame.EVENT:
        return this.#dispatch(f.name, f.payload);
      case Frame.REQUEST: // servers send none in version 1: answer so the server does not wait
        return this.#sendFrame(encodeReplyError(f.id, "client has no request handlers"));
      case Frame.REPLY:
      case Frame.REPLY_ERROR:
        return this.#resolve(f);
      case Frame.PING:
        return this.#sendFrame(encodePong(f.time, wallNs()));
      case Frame.PONG:
        return this.clock.add(nsToMs(f.echo), nsToMs(f.time), performance.timeOrigin + performance.now());
      default:
        return this.#close(CloseCode.PROTOCOL_ERROR, `unexpected ${frameName(f.type)} frame`, false, true);
    }
  }

  async #hello(challenge) {
    let auth = bytes(this.opts.auth);
    if (this.opts.token) auth = await tokenAuth(this.opts.token, challenge, this.opts.auth);
    if (this.state !== "closed") this.#sendFrame(encodeHello(VERSION, auth));
  }

  #welcome(f) {
    this.state = "open";
    this.idBytes = f.connId.slice();
    this.id = toHex(this.idBytes);
    this.maxDatagram = Math.min(f.maxDatagram, this.session.maxDatagram, MAX_DATAGRAM);
    let i = 0;
    const ping = () => {
      if (this.state !== "open") return;
      this.#sendFrame(encodePing(wallNs()));
      i++;
      this.#timer(ping, i < CLOCK_BURST ? CLOCK_BURST_GAP : CLOCK_PERIOD);
    };
    ping();
    const early = this.early;
    this.early = [];
    for (const d of early) this.#onDatagram(d);
    this.welcomed.resolve(this);
  }

  #dispatch(name, payload) {
    this.counts.eventsReceived++;
    const h = this.handlers.get(name);
    if (!h) {
      this.counts.unhandled++;
      return;
    }
    try {
      h(payload.slice(), name);
    } catch (err) {
      this.#log("handler of event", name, "threw", err);
    }
  }

  #resolve(f) {
    const p = this.pending.get(f.id);
    if (!p) return; // late answer to a request that timed out
    this.pending.delete(f.id);
    clearTimeout(p.timer);
    if (f.type === Frame.REPLY_ERROR) p.reject(new RemoteError(p.event, utf8dec.decode(f.payload)));
    else p.resolve(f.payload.slice());
  }

  #sendFrame(f) {
    this.counts.framesSent++;
    this.counts.bytesSent += f.length;
    this.session.sendReliable(f);
  }

  #checkFrame(f, event) {
    if (f.length - FRAME_HEADER > this.maxFrame) {
      throw new RoomwireError(`roomwire: frame too large: "${event}" of ${f.length - FRAME_HEADER} bytes > limit ${this.maxFrame}`);
    }
  }

  #check() {
    if (this.state === "closed") throw this.closeError;
    if (this.state !== "open") throw new RoomwireError("roomwire: not connected yet");
  }

  #close(code, reason, remote, sendClose) {
    if (this.state === "closed") return;
    const opening = this.state !== "open";
    this.state = "closed";
    this.closeError = new CloseError(code, reason, remote);
    if (this.session) {
      if (sendClose) this.#sendFrame(encodeClose(code, reason));
      this.session.close(code, reason);
    }
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(this.closeError);
    }
    this.pending.clear();
    if (opening && this.welcomed) this.welcomed.reject(this.closeError);
    for (const h of this.disconnectHandlers) {
      try {
        h(code, reason, remote);
      } catch (err) {
        this.#log("disconnect handler threw", err);
      }
    }
  }

  #timer(fn, ms) {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  #log(...args) {
    if (this.opts.logger) this.opts.logger(...args);
  }

  // -- unreliable channel ---------------------------------------------------

  #sendDatagram(kind, body, tag = 0) {
    const now = performance.now();
    const [ack, bits] = this.received.ack();
    const seq = this.sent.next(now, tag);
    const d = encodeDatagram(kind, seq, ack, bits, body);
    if (this.session.sendDatagram(d)) {
      this.counts.datagramsSent++;
      this.counts.bytesSent += d.length;
    } else {
      this.counts.datagramsDropped++;
    }
  }

  #emitDatagram(event, payload, sequenced) {
    this.#check();
    const p = bytes(payload), n = nameBytes(event);
    if (DATAGRAM_HEADER + EVENT_OVERHEAD + n.length + p.length > this.maxDatagram) {
      throw new RoomwireError(`roomwire: unreliable event "${event}" of ${DATAGRAM_HEADER + EVENT_OVERHEAD + n.length + p.length} bytes > ${this.maxDatagram}`);
    }
    let seq = 0;
    if (sequenced) {
      if (!this.evSent.has(event) && this.evSent.size >= MAX_SEQUENCED_NAMES) {
        throw new RoomwireError(`roomwire: more than ${MAX_SEQUENCED_NAMES} sequenced event names`);
      }
      seq = ((this.evSent.get(event) || 0) + 1) & 0xffff;
      this.evSent.set(event, seq);
    }
    this.#sendDatagram(Kind.EVENT, encodeEventBody(sequenced, seq, event, p));
  }

  #putInputs() {
    const h = this.inputs;
    let first = (h.seq - Math.min(h.seq, REDUNDANCY) + 1) >>> 0;
    if (h.acked >= first && h.acked < h.seq) first = h.acked + 1;
    const list = [];
    for (let s = first; s <= h.seq; s++) list.push({ seq: s, data: h.ring[s % REDUNDANCY] });
    const [e, t] = this.snaps.ack();
    this.#sendDatagram(Kind.INPUT, encodeInputs(e, t, list), h.seq);
    this.counts.inputsSent++;
    h.sent = true;
  }

  // After each reassembled snapshot (5.11): nothing if an INPUT went out
  // since the last one (it carried the acknowledgement), the unacknowledged
  // inputs again if there are any, else an ACK.
  #acknowledge() {
    const h = this.inputs;
    if (h.sent) {
      h.sent = false;
      return;
    }
    if (h.seq !== 0 && h.acked !== h.seq) {
      this.#putInputs();
      h.sent = false;
      return;
    }
    const [e, t] = this.snaps.ack();
    this.#sendDatagram(Kind.ACK, encodeSnapshotAck(e, t));
  }

  #onDatagram(d) {
    if (this.state === "closed") return;
    if (this.state !== "open") {
      if (this.early.length < EARLY_DATAGRAMS) this.early.push(d.slice());
      return;
    }
    this.counts.datagramsReceived++;
    this.counts.bytesReceived += d.length;
    const now = performance.now();
    let h;
    try {
      h = parseDatagram(d);
    } catch {
      this.counts.datagramsBad++;
      return;
    }
    this.received.add(h.seq);
    this.sent.ackWith(h.ack, h.ackBits, now, (tag) => {
      if (tag > this.inputs.acked) this.inputs.acked = tag;
    });
    try {
      switch (h.kind) {
        case Kind.SNAPSHOT:
          return this.#onFragment(parseSnapshotHeader(h.body), now);
        case Kind.EVENT:
          return this.#onEvent(parseEventBody(h.body));
        case Kind.RELIABLE:
          // Servers copy only for clients that copy (5.17); this one does not.
          parseReliableBody(h.body, this.maxFrame);
          this.counts.copiesIgnored++;
          return;
        default:
          this.counts.datagramsBad++; // INPUT or ACK: the wrong direction
      }
    } catch (err) {
      if (!(err instanceof BadDatagram)) throw err;
      this.counts.datagramsBad++;
    }
  }

  #onEvent(ev) {
    if (ev.sequenced) {
      const last = this.evLatest.get(ev.name);
      if (last !== undefined && !seqNewer(ev.seq, last)) {
        this.counts.datagramsStale++;
        return;
      }
      if (last === undefined && this.evLatest.size >= MAX_SEQUENCED_NAMES) {
        this.counts.datagramsBad++;
        return;
      }
      this.evLatest.set(ev.name, ev.seq);
    }
    this.#dispatch(ev.name, ev.payload);
  }

  #onFragment(h, now) {
    const stale = this.reasm.stale;
    const done = this.reasm.add(h, now);
    this.counts.datagramsStale += this.reasm.stale - stale;
    if (!done) return;
    const r = this.snaps.add(done.tick, done.epoch, done.envelope, now); // throws BadDatagram: not acknowledged
    if (r.undecodable) {
      this.counts.snapshotsUndecodable++;
      this.#acknowledge(); // tell the server what we do hold
      return;
    }
    this.counts.snapshotsReceived++;
    if (r.delta) this.counts.deltasReceived++;
    else this.counts.wholeReceived++;
    this.counts.lastTick = done.tick;
    this.arrivals.push(now);
    if (this.arrivals.length > 256) this.arrivals.splice(0, this.arrivals.length - 256);
    this.#acknowledge();
    if (this.snapshotHandler) {
      try {
        this.snapshotHandler(done.tick, r.frame.data, r.frame);
      } catch (err) {
        this.#log("snapshot handler threw", err);
      }
    }
  }
}

/**
 * Connects to a Roomwire server and completes the handshake. url is the
 * page origin of the server's HTTP side (e.g. "http://127.0.0.1:8080"): the
 * client fetches /cert-hash, tries WebTransport at the URL it names, and
 * falls back to WebSocket at ws://<host>/ws by itself. A ws:// or wss:// url
 * goes straight to WebSocket. opts: token (a connect token, parseToken's
 * forms), auth (application auth bytes), transports (default
 * ["webtransport", "websocket"]), requestTimeout, connectTimeout,
 * webTransportTimeout (ms each), maxFrame.
 */
export async function connect(url, opts = {}) {
  const u = new URL(url);
  const fetchImpl = opts.fetch || globalThis.fetch;
  let transports = opts.transports || ["webtransport", "websocket"];
  if (u.protocol === "ws:" || u.protocol === "wss:") transports = ["websocket"];
  const notes = [];
  for (const t of transports) {
    let session;
    try {
      if (t === "webtransport") {
        if (typeof WebTransport === "undefined") throw new RoomwireError("WebTransport is not available in this browser");
        const res = await fetchImpl(new URL("/cert-hash", u).href, { cache: "no-store" });
        if (!res.ok) throw new RoomwireError(`no WebTransport on this server (/cert-hash: HTTP ${res.status})`);
        const info = await res.json();
        session = await openWebTransport(info.webtransport, info.sha256 ? fromBase64(info.sha256) : null, { timeout: opts.webTransportTimeout || 3000 });
      } else if (t === "websocket") {
        const ws = new URL(u.href);
        if (ws.protocol === "http:") ws.protocol = "ws:";
        else if (ws.protocol === "https:") ws.protocol = "wss:";
        if (u.protocol === "http:" || u.protocol === "https:") ws.pathname = "/ws";
        ws.search = "";
        ws.hash = "";
        session = await openWebSocket(ws.href, { timeout: opts.connectTimeout || 5000, maxFrame: opts.maxFrame, WebSocket: opts.WebSocket });
      } else {
        throw new RoomwireError(`unknown transport "${t}"`);
      }
    } catch (err) {
      notes.push(`${t}: ${String(err && err.message ? err.message : err).replace(/^roomwire: /, "")}`);
      continue;
    }
    const c = new Client(opts);
    c.fallback = notes;
    return c.open(session);
  }
  throw new ConnectError(`roomwire: could not connect to ${url}: ${notes.join("; ")}`, notes);
}

// ---------------------------------------------------------------------------
// The arena demo game (PROTOCOL.md 6.6)

export const arena = Object.freeze({
  kind: "arena",
  /** An input: dx, dy in −127 .. 127. */
  encodeInput(dx, dy) {
    const clamp = (v) => Math.max(-127, Math.min(127, Math.round(v)));
    return new Uint8Array([clamp(dx) & 0xff, clamp(dy) & 0xff]);
  },
  /** A whole arena snapshot: {players: [{id, x, y}], props: [{id, x, y}]}; ids as 32 hex digits. Throws on a malformed one. */
  decodeSnapshot(data) {
    const dv = view(data);
    if (data.length < 2) throw new RoomwireError("arena: snapshot too short");
    const n = dv.getUint16(0);
    const read = (off, k) => {
      const out = [];
      for (let i = 0; i < k; i++) {
        const o = off + 24 * i;
        out.push({ id: toHex(data.subarray(o, o + 16)), x: dv.getFloat32(o + 16), y: dv.getFloat32(o + 20) });
      }
      return out;
    };
    if (data.length < 2 + 24 * n) throw new RoomwireError("arena: snapshot too short");
    const players = read(2, n);
    let props = [];
    const rest = data.length - (2 + 24 * n);
    if (rest > 0) {
      if (rest < 2) throw new RoomwireError("arena: bad props section");
      const p = dv.getUint16(2 + 24 * n);
      if (rest !== 2 + 24 * p) throw new RoomwireError("arena: bad props section");
      props = read(4 + 24 * n, p);
    }
    return { players, props };
  },
});
