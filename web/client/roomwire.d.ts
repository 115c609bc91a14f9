// Types of roomwire.js, the Roomwire browser client (protocol version 1).
// Times are milliseconds: local ones on performance.now()'s clock, server
// ones since the Unix epoch.

/** Bytes on the wire. A string is sent as its UTF-8 bytes. */
export type Payload = Uint8Array | ArrayBuffer | ArrayBufferView | string | null | undefined;

/** A connect token as a matchmaker (or a development server's /dev-token) hands it out. */
export interface TokenJSON {
  /** base64 of the 1066-byte wire form. */
  wire: string;
  /** base64 of the 32-byte client→server key. */
  client_to_server_key: string;
  /** base64 of the 32-byte server→client key. */
  server_to_client_key: string;
  /** Unix seconds. */
  expires: number;
}

/** A decoded connect token. */
export interface Token {
  wire: Uint8Array;
  clientToServerKey: Uint8Array;
  serverToClientKey: Uint8Array;
  expires: number;
}

export type TransportName = "webtransport" | "websocket";

export interface ConnectOptions {
  /** The connect token; without one the HELLO carries only auth. */
  token?: Token | TokenJSON;
  /** The application's own authentication bytes for the server's hook. */
  auth?: Payload;
  /** Transports in the order tried. Default ["webtransport", "websocket"]. */
  transports?: TransportName[];
  /** Default timeout of request(), ms. Default 10 000. */
  requestTimeout?: number;
  /** Bound on opening the WebSocket and on the handshake, ms. Default 10 000 (WebSocket opening: 5 000). */
  connectTimeout?: number;
  /** Bound on opening WebTransport before falling back, ms. Default 3 000. */
  webTransportTimeout?: number;
  /** The largest reliable frame body accepted and sent. Default 65 536. */
  maxFrame?: number;
  /** Receives the errors of handlers. */
  logger?: (...args: unknown[]) => void;
  /** A WebSocket constructor (for environments without a global one). */
  WebSocket?: typeof WebSocket;
  /** A fetch function (for environments without a global one). */
  fetch?: typeof fetch;
}

/** One decoded snapshot as the client holds it. Its data must not be modified. */
export interface SnapshotFrame {
  tick: number;
  epoch: number;
  /** The server's clock at the tick, ns since the Unix epoch. */
  timeNs: bigint;
  /** The same in ms. */
  time: number;
  /** The whole snapshot. */
  data: Uint8Array;
}

/** What interpolate() returns (PROTOCOL.md 5.16). */
export interface Interpolation {
  from: SnapshotFrame;
  to: SnapshotFrame;
  /** 0 at from, 1 at to. */
  alpha: number;
  /** The server time rendered; it never decreases. */
  renderTime: number;
  /** The newest snapshot's time less renderTime; negative on an underrun. */
  delay: number;
  /** The delay the client aims for. */
  target: number;
  /** No snapshot newer than the render time: from and to are the newest. */
  underrun: boolean;
}

export interface RoomInfo {
  kind: string;
  name: string;
  tickRate: number;
  maxMembers: number;
  members: number;
}

/** The connection's figures. Times in ms. */
export interface Stats {
  transport: TransportName | string | null;
  state: "new" | "challenge" | "welcome" | "open" | "closed";
  id: string | null;
  room: string | null;
  maxDatagram: number;
  /** Why the transports tried before this one were not used. */
  fallback: string[];
  /** Smoothed datagram round trip from acknowledgements (5.4); includes the server's wait for its next datagram. */
  rtt: number;
  /** The least datagram round-trip sample. */
  rttMin: number;
  /** The latest PING/PONG round trip on the reliable channel. */
  pingRTT: number;
  pingRTTMin: number;
  /** Smoothed fraction of this side's datagrams lost, 0..1. */
  loss: number;
  datagramsAcked: number;
  datagramsLost: number;
  /** Snapshots decoded a second, over the last 2 s. */
  snapshotRate: number;
  snapshotsReceived: number;
  deltasReceived: number;
  wholeReceived: number;
  snapshotsUndecodable: number;
  snapshotsIncomplete: number;
  lastTick: number;
  epoch: number;
  inputsSent: number;
  /** The newest input known to have arrived. */
  inputsAcked: number;
  framesSent: number;
  framesReceived: number;
  bytesSent: number;
  bytesReceived: number;
  datagramsSent: number;
  datagramsReceived: number;
  datagramsDropped: number;
  datagramsBad: number;
  datagramsStale: number;
  eventsReceived: number;
  unhandled: number;
  copiesIgnored: number;
  interpFrames: number;
  interpUnderruns: number;
  interpDelay: number;
  interpTarget: number;
  /** Estimated server clock less the local clock. */
  clockOffset: number;
}

export class RoomwireError extends Error {}
/** The connection ended with a close code (PROTOCOL.md 4.2) and reason. */
export class CloseError extends RoomwireError {
  code: number;
  reason: string;
  remote: boolean;
}
export class RequestTimeoutError extends RoomwireError {
  event: string;
  timeout: number;
}
export class RemoteError extends RoomwireError {
  event: string;
  remoteMessage: string;
}
export class ProtocolError extends RoomwireError {
  code: number;
}
export class ConnectError extends RoomwireError {
  errors: string[];
}
export class BadDatagram extends RoomwireError {}
/** A room another node of a cluster owns (PROTOCOL.md 6.2): connect to one of urls with seat as the token, and join again. */
export class RedirectError extends RoomwireError {
  room: string;
  urls: string[];
  seat: Uint8Array;
}

export const CloseCode: Readonly<{
  NORMAL: 0; GOING_AWAY: 1; PROTOCOL_ERROR: 2; FRAME_TOO_LARGE: 3; VERSION_MISMATCH: 4;
  HANDSHAKE_TIMEOUT: 5; REFUSED: 6; SLOW_CONSUMER: 7; INTERNAL: 8; KICKED: 9; TIMEOUT: 10; OVER_BUDGET: 11;
}>;

/** What a session hands its client: stream bytes, datagrams, its end, a broken binding. */
export interface SessionHandlers {
  onReliable(chunk: Uint8Array): void;
  onDatagram(d: Uint8Array): void;
  onClosed(code: number, reason: string): void;
  onError(code: number, reason: string): void;
}

/** A transport session (openWebSocket, openWebTransport, or one of your own for Client.open). */
export interface Session {
  kind: string;
  maxDatagram: number;
  sendReliable(frames: Uint8Array): void;
  sendDatagram(d: Uint8Array): boolean;
  close(code: number, reason: string): void;
  /** Sets the handlers, first handing them, in order, what arrived before. */
  attach(handlers: SessionHandlers): void;
}

/** A session's buffering part: deliver() keeps calls until attach(). */
export function sessionBase(kind: string, url: string, maxDatagram: number): Pick<Session, "kind" | "maxDatagram" | "attach"> & {
  url: string;
  deliver(what: keyof SessionHandlers, ...args: unknown[]): void;
};

export class Client {
  constructor(opts?: ConnectOptions);
  /** The connection id as 32 hex digits (the private room's name), once connected. */
  readonly id: string | null;
  readonly idBytes: Uint8Array | null;
  /** The game room joined, if any. */
  readonly room: RoomInfo | null;
  readonly transport: string | null;
  readonly maxDatagram: number;
  /** Runs the handshake over an open session. */
  open(session: Session): Promise<Client>;
  /** Sets the handler of an event name, for reliable and unreliable events alike. */
  on(event: string, fn: (payload: Uint8Array, event: string) => void): this;
  off(event: string): this;
  /** A reliable, ordered event. */
  emit(event: string, payload?: Payload): void;
  /** An event as a datagram: may be lost, duplicated or reordered. */
  emitUnreliable(event: string, payload?: Payload): void;
  /** An event as a sequenced datagram: the server drops one older than the newest of its name. */
  emitLatest(event: string, payload?: Payload): void;
  /** A request; rejects with RequestTimeoutError, RemoteError or CloseError. */
  request(event: string, payload?: Payload, opts?: { timeout?: number }): Promise<Uint8Array>;
  /** Joins a game room: the named one, or with no name any of the kind with a free place. */
  join(kind: string, name?: string): Promise<RoomInfo>;
  leave(): Promise<void>;
  onSnapshot(fn: (tick: number, data: Uint8Array, frame: SnapshotFrame) => void): this;
  onDisconnect(fn: (code: number, reason: string, remote: boolean) => void): this;
  /** An input of at most 128 bytes, sent with every earlier one not yet acknowledged (at most 8). */
  sendInput(data: Payload): void;
  /** The two snapshots around the render time, or null before the first snapshot. */
  interpolate(now?: number): Interpolation | null;
  /** The estimated server clock (Unix ms) at local time now. */
  serverTime(now?: number): number;
  stats(): Stats;
  close(reason?: string): void;
}

/**
 * Connects and completes the handshake. url is the server's page origin
 * (e.g. "http://127.0.0.1:8080"): WebTransport first (its URL and
 * certificate hash from /cert-hash), then WebSocket at ws://host/ws. A ws://
 * or wss:// url goes straight to WebSocket.
 */
export function connect(url: string, opts?: ConnectOptions): Promise<Client>;
/** A development token from the server's /dev-token. */
export function devToken(origin: string, fetchImpl?: typeof fetch): Promise<Token>;
export function parseToken(t: Token | TokenJSON): Token;
export function tokenProof(clientToServerKey: Uint8Array, binding: Uint8Array): Promise<Uint8Array>;
export function tokenAuth(token: Token | TokenJSON, challenge: Uint8Array, appAuth?: Payload): Promise<Uint8Array>;
export function openWebSocket(url: string, opts?: { timeout?: number; maxFrame?: number; WebSocket?: typeof WebSocket }): Promise<Session>;
/** The Roomwire close code for a WebSocket close status (PROTOCOL.md 12.4). */
export function wsCloseCode(status: number): number;
export function openWebTransport(url: string, hash: Uint8Array | null, opts?: { timeout?: number }): Promise<Session>;

/** The arena demo game's input and snapshot (PROTOCOL.md 6.6). */
export const arena: Readonly<{
  kind: "arena";
  encodeInput(dx: number, dy: number): Uint8Array;
  decodeSnapshot(data: Uint8Array): {
    players: { id: string; x: number; y: number }[];
    props: { id: string; x: number; y: number }[];
  };
}>;

// The codec, for tests and other tools (PROTOCOL.md 3 and 5).
export const VERSION: 1;
export const SUBPROTOCOL: "roomwire.v1";
export const Frame: Readonly<Record<"HELLO" | "WELCOME" | "EVENT" | "REQUEST" | "REPLY" | "REPLY_ERROR" | "PING" | "PONG" | "CLOSE" | "CHALLENGE", number>>;
export const Kind: Readonly<Record<"SNAPSHOT" | "INPUT" | "ACK" | "EVENT" | "RELIABLE", number>>;
export const MAX_DATAGRAM: 1200;
export const MAX_SNAPSHOT: 75776;
export const MAX_INPUT: 128;
export function frameName(type: number): string;
export function toHex(b: Uint8Array): string;
export function fromHex(s: string): Uint8Array;
export function toBase64(b: Uint8Array): string;
export function fromBase64(s: string): Uint8Array;
export function bytes(p: Payload): Uint8Array;
export function concat(...parts: ArrayLike<number>[]): Uint8Array;
export function truncateUTF8(s: string, n: number): Uint8Array;
export function seqNewer(a: number, b: number): boolean;
export function tickNewer(a: number, b: number): boolean;
export function epochNewer(a: number, b: number): boolean;
export function encodeHello(version: number, auth?: Payload): Uint8Array;
export function encodeWelcome(version: number, connId: Uint8Array, maxDatagram: number): Uint8Array;
export function encodeEvent(name: string, payload?: Payload): Uint8Array;
export function encodeRequest(id: number, name: string, payload?: Payload): Uint8Array;
export function encodeReply(id: number, payload?: Payload): Uint8Array;
export function encodeReplyError(id: number, message: string): Uint8Array;
export function encodePing(timeNs: bigint): Uint8Array;
export function encodePong(echo: bigint, timeNs: bigint): Uint8Array;
export function encodeClose(code: number, reason: string): Uint8Array;
export function encodeChallenge(challenge: Uint8Array): Uint8Array;
export function parseFrame(type: number, body: Uint8Array): { type: number; [field: string]: unknown };
export class FrameReader {
  constructor(maxFrame?: number);
  push(chunk: Uint8Array): void;
  readonly partial: boolean;
  next(): { type: number; body: Uint8Array; raw: Uint8Array } | null;
}
export interface DatagramHeader { kind: number; seq: number; ack: number; ackBits: number; body: Uint8Array }
export function encodeDatagram(kind: number, seq: number, ack: number, ackBits: number, body: Uint8Array): Uint8Array;
export function parseDatagram(d: Uint8Array): DatagramHeader;
export class Received {
  add(seq: number): void;
  ack(): [number, number];
}
export class Sent {
  constructor(lossAfter?: number);
  readonly rtt: number;
  readonly rttMin: number;
  readonly loss: number;
  readonly acked: number;
  readonly lost: number;
  next(now: number, tag?: number): number;
  ackWith(ack: number, bits: number, now: number, onTag?: ((tag: number) => void) | null): void;
}
export interface FragmentHeader { tick: number; epoch: number; index: number; count: number; data: Uint8Array }
export function parseSnapshotHeader(body: Uint8Array): FragmentHeader;
export function fragmentSnapshot(envelope: Uint8Array, tick: number, epoch: number, firstSeq: number, maxDatagram?: number, ack?: number, ackBits?: number): Uint8Array[];
export class Reassembler {
  constructor(timeout?: number);
  readonly dropped: number;
  readonly stale: number;
  add(h: FragmentHeader, now: number): { tick: number; epoch: number; envelope: Uint8Array } | null;
  reset(): void;
}
export function parseEnvelope(env: Uint8Array): { time: bigint; base: number; payload: Uint8Array };
export function encodeEnvelope(timeNs: bigint, base: number, payload: Uint8Array): Uint8Array;
export function encodeDelta(baseline: Uint8Array, current: Uint8Array): Uint8Array;
export function decodeDelta(baseline: Uint8Array, delta: Uint8Array): Uint8Array;
export function encodeSnapshotAck(epoch: number, tick: number): Uint8Array;
export function encodeInputs(ackEpoch: number, ackTick: number, inputs: { seq: number; data: Uint8Array }[]): Uint8Array;
export function parseInputs(body: Uint8Array): { ackEpoch: number; ackTick: number; inputs: { seq: number; data: Uint8Array }[] };
export function encodeEventBody(sequenced: boolean, seq: number, name: string, payload?: Payload): Uint8Array;
export function parseEventBody(body: Uint8Array): { sequenced: boolean; seq: number; name: string; payload: Uint8Array };
export function encodeReliableBody(first: number, frames: Uint8Array[]): Uint8Array;
export function parseReliableBody(body: Uint8Array, maxFrame?: number): { first: number; frames: { num: number; type: number; body: Uint8Array; raw: Uint8Array }[] };
export function lossCover(p: number): number;
export class ClockSync {
  readonly offset: number;
  readonly ready: boolean;
  add(sent: number, server: number, now: number): void;
}
export class Playout {
  readonly delay: number;
  readonly interval: number;
  readonly loss: number;
  arrive(tick: number, serverTime: number, now: number, first: boolean): void;
  render(now: number): number;
  streamTime(now: number): number;
}
export class SnapshotStore {
  add(tick: number, epoch: number, envelope: Uint8Array, now: number): { frame?: SnapshotFrame; delta?: boolean; undecodable?: boolean };
  ack(): [number, number];
  interpolate(now: number): Interpolation | null;
}
