// The unreliable channel against PROTOCOL.md's hex examples (5.4, 5.7, 5.9
// to 5.12, 5.17), the delta decoder's refusals, reassembly and ack bits.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as rw from "../roomwire.js";

const h = (s) => rw.fromHex(s);
const hex = (b) => rw.toHex(b);

test("5.4 ack bits: 5, 6, 8, then 7 late; and across the wrap", () => {
  const r = new rw.Received();
  assert.deepEqual(r.ack(), [0, 0], "nothing yet");
  const steps = [[5, 5, 0x0], [6, 6, 0x1], [8, 8, 0x6], [7, 8, 0x7]];
  for (const [seq, ack, bits] of steps) {
    r.add(seq);
    assert.deepEqual(r.ack(), [ack, bits], `after ${seq}`);
  }
  const w = new rw.Received();
  for (const s of [65534, 65535, 1]) w.add(s);
  assert.deepEqual(w.ack(), [1, 0x6]);
});

test("5.4 ack bits: a duplicate changes nothing; a jump of 32 keeps the old newest in bit 31; more clears", () => {
  const r = new rw.Received();
  r.add(100);
  r.add(100);
  assert.deepEqual(r.ack(), [100, 0]);
  r.add(132);
  assert.deepEqual(r.ack(), [132, 0x80000000]);
  r.add(100); // 32 back: bit 31 again
  assert.deepEqual(r.ack(), [132, 0x80000000]);
  r.add(99); // 33 back: outside the mask
  assert.deepEqual(r.ack(), [132, 0x80000000]);
  r.add(200);
  assert.deepEqual(r.ack(), [200, 0]);
});

test("5.13 serial arithmetic", () => {
  assert.ok(rw.seqNewer(0, 65535));
  assert.ok(rw.seqNewer(32767, 0));
  assert.ok(!rw.seqNewer(32768, 0));
  assert.ok(rw.epochNewer(1, 255));
  assert.ok(!rw.epochNewer(129, 1));
  assert.ok(rw.tickNewer(0, 0xffffffff));
  assert.ok(!rw.tickNewer(0x80000000, 0));
});

test("Sent numbers 1, 2, … skipping 0, measures RTT, reports tags and counts losses", () => {
  const s = new rw.Sent();
  s.nextSeq = 65535;
  assert.equal(s.next(0), 65535);
  assert.equal(s.next(0), 1, "0 is never sent");
  const t = new rw.Sent();
  const seqs = [];
  for (let i = 0; i < 5; i++) seqs.push(t.next(i * 10, i === 3 ? 42 : 0));
  assert.deepEqual(seqs, [1, 2, 3, 4, 5]);
  const tags = [];
  t.ackWith(5, 0b0101, 100, (tag) => tags.push(tag)); // 5, 4 and 2
  assert.deepEqual(tags, [42]);
  assert.equal(t.acked, 3);
  assert.equal(t.rtt, 100 - 40 + (((100 - 30) - (100 - 40)) / 8) + ((100 - 10) - (60 + 10 / 8)) / 8);
  assert.equal(t.rttMin, 60);
  t.ackWith(5, 0b0101, 120, (tag) => tags.push(tag));
  assert.equal(t.acked, 3, "acknowledged once");
  t.ackWith(5, 0, 1100, null); // 1 and 3 are over a second old
  assert.equal(t.lost, 2);
  assert.ok(t.loss > 0.019 && t.loss < 0.021);
});

// The arena snapshot of 5.9: one player, id 3f9a…, x 100.0, y 250.5.
const player = "0001" + "3f9a0c51d2e847b6a1c4e07f5b2d9e83" + "42c80000" + "437a8000";

test("5.9 the whole snapshot datagram, byte for byte", () => {
  const env = rw.encodeEnvelope(1735689600000000000n, 0, h(player));
  const [d] = rw.fragmentSnapshot(env, 42, 1, 258, 1200, 7, 0x3f);
  assert.equal(hex(d), "010102000700" + "00003f" + "0000002a010001" + "1816687ec0570000" + "00" + player);
  assert.equal(d.length, 51);
});

test("5.9 the delta for tick 43, byte for byte, and what it decodes to", () => {
  const next = "0001" + "3f9a0c51d2e847b6a1c4e07f5b2d9e83" + "42d55555" + "437a8000";
  const delta = rw.encodeDelta(h(player), h(next));
  assert.equal(hex(delta), "1a" + "13031d5555" + "0400");
  assert.equal(hex(rw.decodeDelta(h(player), delta)), next);
  const env = rw.encodeEnvelope(0x1816687ec253a055n, 1, delta);
  const [d] = rw.fragmentSnapshot(env, 43, 1, 259, 1200, 8, 0x7f);
  assert.equal(hex(d), "01010300080000007f0000002b010001" + "1816687ec253a055" + "01" + "1a13031d55550400");
  assert.equal(d.length, 33);
});

test("5.9 both datagrams through the client's receiver: whole, then the delta against it", () => {
  const store = new rw.SnapshotStore();
  const re = new rw.Reassembler();
  const whole = h("0101020007" + "0000003f" + "0000002a010001" + "1816687ec0570000" + "00" + player);
  const delta = h("01010300080000007f0000002b010001" + "1816687ec253a055" + "01" + "1a13031d55550400");
  const out = [];
  for (const [i, d] of [whole, delta].entries()) {
    const hd = rw.parseDatagram(d);
    assert.equal(hd.kind, rw.Kind.SNAPSHOT);
    const done = re.add(rw.parseSnapshotHeader(hd.body), i * 33);
    assert.ok(done);
    out.push(store.add(done.tick, done.epoch, done.envelope, i * 33));
  }
  assert.equal(out[0].delta, false);
  assert.equal(out[1].delta, true);
  const snap = rw.arena.decodeSnapshot(out[1].frame.data);
  assert.equal(snap.players[0].id, "3f9a0c51d2e847b6a1c4e07f5b2d9e83");
  assert.equal(snap.players[0].x, Math.fround(106.666664));
  assert.equal(snap.players[0].y, 250.5);
  assert.deepEqual(store.ack(), [1, 43]);
  assert.ok(Math.abs(out[1].frame.time - out[0].frame.time - 1000 / 30) < 1e-3);
});

test("5.9 a 2000-byte envelope takes two datagrams on QUIC and on KCP", () => {
  const env = new Uint8Array(2000).map((_, i) => i & 0xff);
  const q = rw.fragmentSnapshot(env, 43, 1, 10, 1200, 7, 0x3f);
  assert.deepEqual(q.map((d) => d.length), [1200, 832]);
  assert.equal(hex(q[0].subarray(0, 16)), "01000a00070000003f0000002b010002");
  assert.equal(hex(q[1].subarray(0, 16)), "01000b00070000003f0000002b010102");
  const k = rw.fragmentSnapshot(env, 43, 1, 10, 1175, 7, 0x3f);
  assert.deepEqual(k.map((d) => d.length), [1175, 857]);
  const re = new rw.Reassembler();
  assert.equal(re.add(rw.parseSnapshotHeader(rw.parseDatagram(q[1]).body), 0), null);
  const done = re.add(rw.parseSnapshotHeader(rw.parseDatagram(q[0]).body), 0);
  assert.deepEqual(done.envelope, env);
});

test("5.7 the XOR codec's examples", () => {
  const base = h("0102030405060708"), cur = h("010203040506770" + "8ff");
  assert.equal(hex(rw.encodeDelta(base, cur)), "0906037000ff");
  assert.deepEqual(rw.decodeDelta(base, h("0906037000ff")), cur);
  const b26 = new Uint8Array(26).fill(9);
  assert.equal(hex(rw.encodeDelta(b26, b26)), "1a1a00");
  assert.equal(hex(rw.encodeDelta(new Uint8Array(0), new Uint8Array(0))), "00");
  assert.deepEqual(rw.decodeDelta(b26, h("00")), new Uint8Array(0));
  // Any split into runs decodes, and non-minimal varints too.
  assert.deepEqual(rw.decodeDelta(base, h("09" + "0300" + "0300" + "00037000ff")), cur);
  assert.deepEqual(rw.decodeDelta(base, h("8900" + "8600037000ff")), cur);
  // A baseline shorter than the snapshot reads as zeros; a longer one is cut.
  assert.deepEqual(rw.decodeDelta(h("01"), h("03" + "0102" + "0203")), h("010203"));
  assert.deepEqual(rw.decodeDelta(h("0102030405"), h("02" + "0200")), h("0102"));
});

test("5.7 the encoder keeps short zero runs inside the literal and round-trips random snapshots", () => {
  const base = h("00000000000000000000"), cur = h("01000002000000000003");
  assert.equal(hex(rw.encodeDelta(base, cur)), "0a" + "000401000002" + "0501" + "03");
  let seed = 1;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
  for (let k = 0; k < 200; k++) {
    const a = new Uint8Array(rnd() * 3).map(() => (rnd() < 200 ? 0 : rnd()));
    const b = new Uint8Array(rnd() * 3).map((_, i) => (rnd() < 180 ? a[i] || 0 : rnd()));
    assert.deepEqual(rw.decodeDelta(a, rw.encodeDelta(a, b)), b);
  }
});

test("5.7 the decoder refuses what Go's refuses", () => {
  const base = new Uint8Array(8);
  const bad = {
    "": "bad length varint",
    "80": "bad length varint",
    "ffffffffffffffffff7f": "bad length varint", // 10th byte > 1: overflows 64 bits
    "818005": "snapshot of 81921 bytes > 75776",
    "0a": "runs describe 0 of 10 bytes",
    "0a0000": "empty run at snapshot byte 0",
    "0a0b00": "run of 11+0 bytes at snapshot byte 0 overruns 10",
    "0a0902aa": "run of 9+2 bytes at snapshot byte 0 overruns 10",
    "0a0003aa": "literal of 3 bytes with 1 left",
    "0a0a0000": "1 bytes after the last run",
    "0a05": "bad literal length varint at byte 2",
    "0a0580": "bad literal length varint at byte 2",
    "0a0501aa": "runs describe 6 of 10 bytes",
    "0180": "bad zeros varint at byte 1",
  };
  for (const [d, msg] of Object.entries(bad)) {
    assert.throws(() => rw.decodeDelta(base, h(d)), (e) => e instanceof rw.BadDatagram && e.message === `unreliable: malformed delta: ${msg}`, `${d}: ${msg}`);
  }
  assert.equal(rw.decodeDelta(base, h("80d004" + "80d00400")).length, 75776, "MAX_SNAPSHOT itself decodes");
});

test("5.8 a delta whose baseline is not held is undecodable, never applied to another", () => {
  const s = new rw.SnapshotStore();
  const whole = (tick, data) => s.add(tick, 1, rw.encodeEnvelope(BigInt(tick) * 33000000n, 0, data), tick);
  whole(10, h("aaaa"));
  const d = rw.encodeDelta(h("aaaa"), h("aabb"));
  assert.equal(s.add(12, 1, rw.encodeEnvelope(0n, 1, d), 12).undecodable, true, "tick 11 not held");
  assert.equal(hex(s.add(12, 1, rw.encodeEnvelope(396000000n, 2, d), 12).frame.data), "aabb");
  // Tick 44 lands in tick 12's slot: 12 is no baseline any more.
  whole(44, h("cccc"));
  assert.equal(s.add(45, 1, rw.encodeEnvelope(0n, 33, d), 45).undecodable, true);
  // Another epoch forgets everything held.
  assert.equal(s.add(46, 2, rw.encodeEnvelope(0n, 2, d), 46).undecodable, true);
  assert.deepEqual(s.ack(), [1, 44]);
  assert.throws(() => s.add(50, 2, h("0000"), 50), rw.BadDatagram);
});

test("5.10 INPUT, 5.11 ACK, 5.12 EVENT examples byte for byte", () => {
  const inputs = rw.encodeInputs(1, 42, [{ seq: 11, data: h("7f81") }, { seq: 12, data: h("007f") }]);
  const input = rw.encodeDatagram(rw.Kind.INPUT, 7, 258, 0x7, inputs);
  assert.equal(hex(input), "020007010200000007" + "010000002a" + "02" + "0000000b027f81" + "0000000c02007f");
  assert.equal(input.length, 29);
  const p = rw.parseInputs(inputs);
  assert.deepEqual([p.ackEpoch, p.ackTick, p.inputs.map((i) => i.seq)], [1, 42, [11, 12]]);
  assert.deepEqual(rw.arena.encodeInput(127, -127), h("7f81"));
  assert.deepEqual(rw.arena.encodeInput(0, 300), h("007f"));

  const ack = rw.encodeDatagram(rw.Kind.ACK, 8, 259, 0xf, rw.encodeSnapshotAck(1, 43));
  assert.equal(hex(ack), "03000801030000000f010000002b");

  const pos = rw.encodeDatagram(rw.Kind.EVENT, 260, 9, 0xff, rw.encodeEventBody(true, 3, "pos", h("0102")));
  assert.equal(hex(pos), "0401040009000000ff" + "01" + "0003" + "03" + "706f73" + "0102");
  const boom = rw.encodeDatagram(rw.Kind.EVENT, 261, 9, 0xff, rw.encodeEventBody(false, 0, "boom", null));
  assert.equal(hex(boom), "0401050009000000ff0000000462" + "6f6f6d");
  const ev = rw.parseEventBody(rw.parseDatagram(pos).body);
  assert.deepEqual([ev.sequenced, ev.seq, ev.name, hex(ev.payload)], [true, 3, "pos", "0102"]);
});

test("5.17 RELIABLE example byte for byte", () => {
  const frames = [rw.encodeEvent("chat", new TextEncoder().encode("hi")), rw.encodeRequest(2, "ping", null)];
  const d = rw.encodeDatagram(rw.Kind.RELIABLE, 12, 40, 0xf, rw.encodeReliableBody(3, frames));
  assert.equal(hex(d), "05000c00280000000f" + "0000000302" + "03000007" + "046368617468" + "69" + "04000009" + "0000000204" + "70696e67");
  assert.equal(d.length, 38);
  const r = rw.parseReliableBody(rw.parseDatagram(d).body);
  assert.deepEqual(r.frames.map((f) => [f.num, f.type]), [[3, 3], [4, 4]]);
  assert.equal(rw.parseFrame(r.frames[1].type, r.frames[1].body).name, "ping");
  assert.throws(() => rw.parseReliableBody(h("0000000300")), /no frames/);
  assert.throws(() => rw.parseReliableBody(h("000000030103000007")), /cut short/);
  assert.throws(() => rw.parseReliableBody(rw.concat(rw.encodeReliableBody(3, frames.slice(0, 1)), h("00"))), /after the last/);
});

test("5.14 bad datagrams and bodies", () => {
  assert.throws(() => rw.parseDatagram(h("0100010000000000")), /too short/);
  assert.throws(() => rw.parseDatagram(new Uint8Array(1201).fill(1)), /too large/);
  assert.throws(() => rw.parseDatagram(h("060001000000000000")), /unknown datagram kind: 0x06/);
  assert.throws(() => rw.parseDatagram(h("010000000000000000")), /seq 0/);
  assert.throws(() => rw.parseSnapshotHeader(h("000000010100")), /too short/);
  assert.throws(() => rw.parseSnapshotHeader(h("00000001010000")), /fragment 0 of 0/);
  assert.throws(() => rw.parseSnapshotHeader(h("00000001014141")), /fragment 65 of 65/);
  assert.throws(() => rw.parseSnapshotHeader(h("00000001010202")), /fragment 2 of 2/);
  assert.throws(() => rw.parseEventBody(h("000000")), /too short/);
  assert.throws(() => rw.parseEventBody(h("00000000")), /name of 0 bytes/);
  assert.throws(() => rw.parseEventBody(h("0000000261")), /name of 2 bytes/);
  assert.throws(() => rw.parseEnvelope(h("0000000000000000")), /envelope of 8 bytes/);
  assert.throws(() => rw.parseInputs(h("010000002a09")), /input count/);
  assert.throws(() => rw.parseInputs(h("010000002a01000000010281")), /cut short/);
  assert.throws(() => rw.parseInputs(h("010000002a010000000100ff")), /after the inputs/);
});

function frag(tick, epoch, index, count, data = new Uint8Array([index])) {
  return { tick, epoch, index, count, data };
}

test("5.13 reassembly: out of order, duplicates, inconsistent counts, older ticks dropped", () => {
  const r = new rw.Reassembler();
  assert.equal(r.add(frag(10, 1, 2, 3), 0), null);
  assert.equal(r.add(frag(10, 1, 2, 3), 0), null, "duplicate");
  assert.equal(r.add(frag(10, 1, 1, 4), 0), null, "another count: ignored");
  assert.equal(r.add(frag(10, 1, 0, 3), 0), null);
  assert.deepEqual([...r.add(frag(10, 1, 1, 3), 0).envelope], [0, 1, 2]);
  assert.equal(r.add(frag(10, 1, 0, 1), 0), null, "tick 10 is done");
  assert.equal(r.add(frag(9, 1, 0, 1), 0), null, "older");
  assert.equal(r.stale, 2);
  assert.ok(r.add(frag(11, 1, 0, 1), 0));
});

test("5.13 reassembly: a completed tick discards older ones in progress; at most 4 in progress", () => {
  const r = new rw.Reassembler();
  for (const t of [20, 21, 22, 23]) r.add(frag(t, 1, 0, 2), 0);
  assert.equal(r.add(frag(19, 1, 0, 2), 0), null, "older than every one in progress, no room");
  assert.equal(r.stale, 1);
  r.add(frag(24, 1, 0, 2), 0); // evicts 20
  assert.equal(r.dropped, 1);
  assert.equal(r.add(frag(20, 1, 1, 2), 0), null, "20 was evicted: a new slot would be needed");
  assert.ok(r.add(frag(22, 1, 1, 2), 0), "22 completes");
  assert.equal(r.add(frag(21, 1, 1, 2), 0), null, "21 was discarded when 22 completed");
  assert.ok(r.add(frag(23, 1, 1, 2), 0));
});

test("5.13 reassembly: the 1-second timeout and epochs", () => {
  const r = new rw.Reassembler();
  r.add(frag(5, 1, 0, 2), 0);
  r.add(frag(6, 1, 0, 2), 1001); // 5 times out here
  assert.equal(r.dropped, 1);
  assert.equal(r.add(frag(5, 1, 1, 2), 1001), null, "5 is gone: its second half starts a new slot");
  assert.ok(r.add(frag(100, 1, 0, 1), 1002));
  // A newer epoch starts a new tick sequence, whatever its ticks.
  assert.ok(r.add(frag(3, 2, 0, 1), 1003));
  assert.equal(r.add(frag(101, 1, 0, 1), 1004), null, "the older epoch is stale now");
  // Before the first snapshot of an epoch completes, any tick is taken.
  assert.equal(r.add(frag(50, 3, 0, 2), 1005), null);
  assert.ok(r.add(frag(40, 3, 0, 1), 1006));
  assert.ok(rw.epochNewer(1, 255));
  const w = new rw.Reassembler();
  w.add(frag(7, 255, 0, 1), 0);
  assert.ok(w.add(frag(1, 1, 0, 1), 0), "1 is newer than 255");
});
