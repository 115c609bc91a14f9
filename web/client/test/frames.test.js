// The reliable channel's frames against PROTOCOL.md's hex examples (2.6,
// 3.3.x, 4.3, 6.3, 6.4) and the decoding errors of 4.4.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as rw from "../roomwire.js";

const h = (s) => rw.fromHex(s);
const hex = (b) => rw.toHex(b);
const text = (s) => new TextEncoder().encode(s);

function parseOne(bytes) {
  const r = new rw.FrameReader();
  r.push(bytes);
  const f = r.next();
  assert.ok(f, "a whole frame");
  assert.equal(r.next(), null);
  return rw.parseFrame(f.type, f.body);
}

test("2.6 HELLO with auth bytes tok, and without", () => {
  assert.equal(hex(rw.encodeHello(1, text("tok"))), "010000050001746f6b");
  assert.equal(hex(rw.encodeHello(1)), "010000020001");
  const f = parseOne(h("010000050001746f6b"));
  assert.equal(f.version, 1);
  assert.equal(new TextDecoder().decode(f.auth), "tok");
});

test("2.6 HELLO carrying a token and proof is 1104 bytes, body length 1100", () => {
  const wire = new Uint8Array(1066);
  wire[1] = 1;
  wire.set([0x72, 0x6f], 2);
  const f = rw.encodeHello(1, rw.concat(wire, new Uint8Array(32)));
  assert.equal(f.length, 1104);
  assert.equal(hex(f.subarray(0, 10)), "0100044c0001" + "0001726f");
});

test("2.6 WELCOME, KCP's max datagram, and the refusal", () => {
  const id = h("3f9a0c51d2e847b6a1c4e07f5b2d9e83");
  assert.equal(hex(rw.encodeWelcome(1, id, 1200)), "020000140001" + "3f9a0c51d2e847b6a1c4e07f5b2d9e83" + "04b0");
  assert.ok(hex(rw.encodeWelcome(1, id, 1175)).endsWith("0497"));
  const w = parseOne(rw.encodeWelcome(1, id, 1200));
  assert.equal(w.version, 1);
  assert.equal(hex(w.connId), "3f9a0c51d2e847b6a1c4e07f5b2d9e83");
  assert.equal(w.maxDatagram, 1200);
  assert.equal(hex(rw.encodeClose(6, "bad token")), "0900000b0006" + "62616420746f6b656e");
  const c = parseOne(h("0900000b000662616420746f6b656e"));
  assert.deepEqual([c.code, c.reason], [6, "bad token"]);
});

test("3.3.3 EVENT chat hi", () => {
  assert.equal(hex(rw.encodeEvent("chat", text("hi"))), "03000007046368617468" + "69");
  const f = parseOne(h("0300000704636861746869"));
  assert.equal(f.name, "chat");
  assert.equal(hex(f.payload), "6869");
});

test("3.3.4 REQUEST $join arena and 3.3.5 its REPLY", () => {
  assert.equal(hex(rw.encodeRequest(1, "$join", h("056172656e61"))), "04000010" + "00000001" + "05246a6f696e" + "056172656e61");
  const r = parseOne(h("0400001000000001" + "05246a6f696e" + "056172656e61"));
  assert.deepEqual([r.id, r.name, hex(r.payload)], [1, "$join", "056172656e61"]);
  const reply = h("05000011" + "00000001" + "076172656e612d31" + "1e" + "0010" + "0001");
  assert.equal(hex(rw.encodeReply(1, reply.subarray(8))), hex(reply));
  const f = parseOne(reply);
  assert.equal(f.id, 1);
  assert.equal(hex(f.payload), "076172656e612d31" + "1e00100001");
});

test("3.3.6 REPLY_ERROR rooms: not in a game room", () => {
  const want = "0600001d00000002" + rw.toHex(text("rooms: not in a game room"));
  assert.equal(hex(rw.encodeReplyError(2, "rooms: not in a game room")), want);
  const f = parseOne(h(want));
  assert.equal(f.type, rw.Frame.REPLY_ERROR);
  assert.equal(new TextDecoder().decode(f.payload), "rooms: not in a game room");
});

test("3.3.7 PING and 3.3.8 PONG", () => {
  const t = 1735689600000000000n;
  assert.equal(hex(rw.encodePing(t)), "07000008" + "1816687ec0570000");
  assert.equal(hex(rw.encodePong(t, t + 1500000n)), "08000010" + "1816687ec0570000" + "1816687ec06de360");
  const p = parseOne(h("080000101816687ec05700001816687ec06de360"));
  assert.equal(p.echo, t);
  assert.equal(p.time - p.echo, 1500000n);
});

test("3.3.9 CLOSE client closed, 4.3 kicked for cheating", () => {
  assert.equal(hex(rw.encodeClose(0, "client closed")), "0900000f0000" + "636c69656e7420636c6f736564");
  assert.equal(hex(rw.encodeClose(9, "cheating")), "0900000a0009" + "6368656174696e67");
});

test("CLOSE and REPLY_ERROR cut long reasons at 256 bytes, on a character boundary", () => {
  const long = "é".repeat(200); // 400 bytes
  const f = rw.encodeClose(2, long);
  assert.equal(f.length, 4 + 2 + 256);
  const e = rw.encodeReplyError(1, "a" + "é".repeat(200)); // 1 + 400 bytes: cut to 255
  assert.equal(e.length, 4 + 4 + 255);
  assert.equal(new TextDecoder("utf-8", { fatal: true }).decode(e.subarray(8)), "a" + "é".repeat(127));
});

test("6.3 $leave and its reply; 6.2 join lobby payload", () => {
  assert.equal(hex(rw.encodeRequest(2, "$leave", new Uint8Array(0))), "0400000b0000000206246c65617665");
  assert.equal(hex(rw.encodeReply(2, new Uint8Array(0))), "0500000400000002");
});

test("6.4 member_joined", () => {
  const f = rw.encodeEvent("member_joined", text("3f9a0c51d2e847b6a1c4e07f5b2d9e83"));
  assert.equal(hex(f.subarray(0, 5)), "0300002e0d");
  assert.equal(f.length, 4 + 46);
});

test("3.3.10 CHALLENGE is exactly 32 bytes", () => {
  const c = new Uint8Array(32).fill(7);
  const f = parseOne(rw.encodeChallenge(c));
  assert.equal(f.type, rw.Frame.CHALLENGE);
  assert.equal(f.challenge.length, 32);
  assert.throws(() => rw.parseFrame(rw.Frame.CHALLENGE, new Uint8Array(31)), /CHALLENGE of 31 bytes, want 32/);
});

test("FrameReader reassembles frames split anywhere and several in one chunk", () => {
  const stream = rw.concat(rw.encodeEvent("chat", text("hi")), rw.encodePing(5n), rw.encodeEvent("x", new Uint8Array(5000)));
  for (const cut of [1, 3, 4, 5, 11, 12, 13, 30, 100, stream.length]) {
    const r = new rw.FrameReader();
    const got = [];
    for (let i = 0; i < stream.length; i += cut) {
      r.push(stream.subarray(i, i + cut));
      for (let f; (f = r.next());) got.push(f);
    }
    assert.deepEqual(got.map((f) => f.type), [3, 7, 3], `chunks of ${cut}`);
    assert.equal(got[2].body.length, 2 + 5000);
    assert.equal(r.partial, false);
  }
});

test("FrameReader checks the length against its limit at the header, before the body", () => {
  const r = new rw.FrameReader(65536);
  r.push(h("03011170")); // EVENT of 70000 bytes: header only
  assert.throws(() => r.next(), (e) => e instanceof rw.ProtocolError && e.code === 3 &&
    e.message === "reliable: frame too large: EVENT body of 70000 bytes > limit 65536");
});

test("4.4 decoding errors close with code 2 and Go's reasons", () => {
  const cases = [
    [0x0b, "", "reliable: unknown frame type: 0x0b"],
    [rw.Frame.REQUEST, "000000", "reliable: truncated frame: REQUEST body of 3 bytes"],
    [rw.Frame.EVENT, "00", "reliable: bad event name: empty name in EVENT"],
    [rw.Frame.EVENT, "0963686174", "reliable: truncated frame: EVENT name of 9 bytes, 4 left"],
    [rw.Frame.PING, "000000000000000000", "reliable: malformed frame: PING of 9 bytes, want 8"],
    [rw.Frame.PONG, "00", "reliable: malformed frame: PONG of 1 bytes, want 16"],
    [rw.Frame.WELCOME, "0001", "reliable: malformed frame: WELCOME of 2 bytes, want 20"],
    [rw.Frame.HELLO, "00", "reliable: truncated frame: HELLO body of 1 bytes"],
    [rw.Frame.CLOSE, "00", "reliable: truncated frame: CLOSE body of 1 bytes"],
    [rw.Frame.CLOSE, "0000" + "61".repeat(257), "reliable: malformed frame: CLOSE reason of 257 bytes > 256"],
    [rw.Frame.REPLY, "000000", "reliable: truncated frame: REPLY body of 3 bytes"],
  ];
  for (const [t, body, msg] of cases) {
    assert.throws(() => rw.parseFrame(t, h(body)), (e) => e instanceof rw.ProtocolError && e.code === 2 && e.message === msg, msg);
  }
  assert.equal(rw.parseFrame(rw.Frame.CLOSE, h("0000" + "61".repeat(256))).reason.length, 256);
});

test("event names must be 1..255 bytes", () => {
  assert.throws(() => rw.encodeEvent("", null), /event name of 0 bytes/);
  assert.throws(() => rw.encodeEvent("x".repeat(256), null), /event name of 256 bytes/);
  assert.equal(rw.encodeEvent("x".repeat(255), null).length, 4 + 1 + 255);
});
