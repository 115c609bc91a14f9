// The WebSocket binding (PROTOCOL.md 12) against a scripted WebSocket.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import * as rw from "../roomwire.js";

const sockets = [];
class FakeWS {
  constructor(url, protocol) {
    this.url = url;
    this.offered = protocol;
    this.protocol = "";
    this.readyState = 0;
    this.bufferedAmount = 0;
    this.sent = [];
    this.closedWith = null;
    sockets.push(this);
  }
  // The server's side of the script.
  accept(protocol = this.offered) {
    this.protocol = protocol;
    this.readyState = 1;
    this.onopen({});
  }
  message(bytes) {
    const b = Uint8Array.from(bytes);
    this.onmessage({ data: b.buffer });
  }
  serverClose(code, reason) {
    this.readyState = 3;
    this.onclose({ code, reason });
  }
  // The browser's API.
  send(b) {
    this.sent.push(Uint8Array.from(b));
  }
  close(code, reason) {
    this.closedWith = [code, reason];
    this.readyState = 3;
  }
}

const clients = [];
after(() => clients.forEach((c) => c.close()));

async function open() {
  const p = rw.openWebSocket("ws://127.0.0.1:8080/ws", { WebSocket: FakeWS, maxFrame: 1024 });
  const ws = sockets[sockets.length - 1];
  ws.accept();
  return [await p, ws];
}

test("12.1 the client offers roomwire.v1 and refuses a server that does not select it", async () => {
  const p = rw.openWebSocket("ws://127.0.0.1:8080/ws", { WebSocket: FakeWS });
  const ws = sockets[sockets.length - 1];
  assert.equal(ws.offered, "roomwire.v1");
  assert.equal(ws.binaryType, "arraybuffer");
  ws.accept("");
  await assert.rejects(p, /chose subprotocol ""/);
  assert.equal(ws.closedWith[0], 4002);
  const [s] = await open();
  assert.equal(s.kind, "websocket");
  assert.equal(s.maxDatagram, 1200);
});

test("12.2 messages: channel 0 reliable bytes, 1 one datagram; errors close with 2 or 3", async () => {
  const [s, ws] = await open();
  const got = [];
  ws.message([0, 0x0a, 0, 0]); // before attach: kept
  s.attach({
    onReliable: (b) => got.push(["r", rw.toHex(b)]),
    onDatagram: (d) => got.push(["d", rw.toHex(d)]),
    onClosed: (c, r) => got.push(["closed", c, r]),
    onError: (c, r) => got.push(["error", c, r]),
  });
  ws.message([0, 0x00, 0x20]);
  ws.message([1, 4, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x61]);
  ws.onmessage({ data: "text" });
  ws.message([]);
  ws.message([2, 0]);
  ws.message([1, ...new Uint8Array(1201)]);
  ws.message([0, ...new Uint8Array(1024 + 5)]);
  ws.message([0, ...new Uint8Array(1024 + 4)]);
  assert.deepEqual(got.slice(0, 3), [["r", "0a0000"], ["r", "0020"], ["d", "04000100000000000000000161"]]);
  assert.deepEqual(got.slice(3, 8).map((g) => g.slice(0, 2)), [["error", 2], ["error", 2], ["error", 2], ["error", 2], ["error", 3]]);
  assert.equal(got[8][0], "r");
  s.sendReliable(rw.encodePing(1n));
  assert.deepEqual([...ws.sent[0].subarray(0, 2)], [0, 7]);
  assert.equal(s.sendDatagram(new Uint8Array(9)), true);
  assert.equal(ws.sent[1][0], 1);
  ws.bufferedAmount = 1 << 20;
  assert.equal(s.sendDatagram(new Uint8Array(9)), false, "a backlog in the socket: dropped like a datagram");
});

test("12.4 close: status 4000 + code both ways, reasons cut to 123 bytes, other statuses mapped", async () => {
  const [s, ws] = await open();
  s.close(0, "client closed");
  assert.deepEqual(ws.closedWith, [4000, "client closed"]);
  const [s2, ws2] = await open();
  s2.close(2, "x".repeat(300));
  assert.equal(ws2.closedWith[1].length, 123);
  const [s3, ws3] = await open();
  s3.close(1234, "odd");
  assert.equal(ws3.closedWith[0], 4008);

  const [s4, ws4] = await open();
  const ends = [];
  s4.attach({ onReliable() {}, onDatagram() {}, onError() {}, onClosed: (c, r) => ends.push([c, r]) });
  ws4.serverClose(4009, "cheating");
  assert.deepEqual(ends, [[9, "cheating"]]);
  const table = { 1000: 0, 1005: 0, 1001: 1, 1009: 3, 1002: 2, 1003: 2, 1007: 2, 1008: 2, 1006: 8, 1011: 8, 4006: 6, 4999: 999 };
  for (const [status, code] of Object.entries(table)) assert.equal(rw.wsCloseCode(Number(status)), code, status);
});

test("12.4 the server's kick reaches the client as code 9 from the CLOSE frame", async () => {
  const [s, ws] = await open();
  const c = new rw.Client({});
  clients.push(c);
  const opened = c.open(s);
  ws.message([0, ...rw.encodeChallenge(new Uint8Array(32))]);
  await new Promise((r) => setTimeout(r, 5));
  assert.equal(ws.sent[0][1], rw.Frame.HELLO);
  ws.message([0, ...rw.encodeWelcome(1, new Uint8Array(16), 1200)]);
  await opened;
  const seen = [];
  c.onDisconnect((code, reason, remote) => seen.push([code, reason, remote]));
  ws.message(rw.fromHex("00090000 0a0009 6368656174696e67"));
  ws.serverClose(4009, "cheating");
  assert.deepEqual(seen, [[9, "cheating", true]]);
  assert.deepEqual(ws.closedWith, [4009, "cheating"], "the client answers the close with the same status");
});
