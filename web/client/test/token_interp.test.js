// The token proof (7.7) and the clock and render clock of 5.16.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as rw from "../roomwire.js";

const seq = (from, n) => Uint8Array.from({ length: n }, (_, i) => from + i);

test("7.7 the proof example: key 80..9f, binding c0..df", async () => {
  const proof = await rw.tokenProof(seq(0x80, 32), seq(0xc0, 32));
  assert.equal(rw.toHex(proof), "b986b4dfd60ad71c1e96e3ec728f0e87" + "7e72b752e804ef730179ab2f3a1df581");
});

test("7.7 HELLO auth on a challenged transport: wire form | proof | app bytes", async () => {
  const wire = seq(0, 255);
  const token = {
    wire: rw.concat(wire, wire, wire, wire, new Uint8Array(1066 - 1020)),
    client_to_server_key: rw.toBase64(seq(0x80, 32)),
    server_to_client_key: rw.toBase64(seq(0xa0, 32)),
    expires: 1735689645,
  };
  token.wire = rw.toBase64(token.wire);
  const t = rw.parseToken(token);
  assert.equal(t.wire.length, 1066);
  assert.equal(t.expires, 1735689645);
  const auth = await rw.tokenAuth(token, seq(0xc0, 32), new Uint8Array([1, 2]));
  assert.equal(auth.length, 1066 + 32 + 2);
  assert.equal(rw.toHex(auth.subarray(1066, 1070)), "b986b4df");
  assert.throws(() => rw.parseToken({ wire: "AAAA", client_to_server_key: token.client_to_server_key }), /1066/);
});

test("5.16 loss cover: 0 without loss, 0.97 at 5 %, 2.625 at 20 %", () => {
  assert.equal(rw.lossCover(0), 0);
  assert.equal(rw.lossCover(0.004), 0);
  assert.ok(Math.abs(rw.lossCover(0.05) - 0.97) < 0.005);
  assert.ok(Math.abs(rw.lossCover(0.2) - 2.625) < 1e-9);
  assert.equal(rw.lossCover(0.9), 8);
});

test("5.16 the clock: the least delayed samples dominate", () => {
  const c = new rw.ClockSync();
  c.add(0, 1000 + 5, 10); // rtt 10, offset 1000
  c.add(100, 1100 + 50 + 40, 200); // rtt 100: ignored (excess 90 > 5)
  assert.ok(Math.abs(c.offset - 1000) < 1e-9);
  c.add(300, 1300 + 6, 312); // rtt 12, offset 1000: weight 1/(1.4)^2
  assert.ok(Math.abs(c.offset - 1000) < 1e-9);
  assert.equal(c.minRTT, 10);
});

test("5.16 render clock: a steady 30 Hz stream renders about one interval behind, never backwards", () => {
  const p = new rw.Playout();
  const I = 1000 / 30;
  let last = -Infinity;
  for (let k = 1; k <= 200; k++) {
    const arrival = k * I + 20; // 20 ms of latency, no jitter
    p.arrive(k, 1e12 + k * I, arrival, k === 1);
    for (let f = 0; f < 2; f++) {
      const now = arrival + f * I / 2;
      const r = p.render(now);
      assert.ok(r >= last);
      last = r;
    }
  }
  assert.ok(Math.abs(p.interval - I) < 1e-3, `interval ${p.interval}`);
  assert.ok(p.loss < 0.002, `loss ${p.loss}`);
  assert.ok(Math.abs(p.delay - I) < 0.01, `delay ${p.delay}`);
  // Half an interval after the newest arrived, the render time is the
  // stream clock (newest + I/2) less the delay (I).
  const newest = 1e12 + 200 * I;
  assert.ok(Math.abs(newest - last - I / 2) < 0.5, `trails by ${newest - last}`);
});

test("5.16 SnapshotStore.interpolate blends the two snapshots around the render time", () => {
  const s = new rw.SnapshotStore();
  const I = 1000 / 30;
  for (let k = 1; k <= 60; k++) {
    s.add(k, 1, rw.encodeEnvelope(BigInt(Math.round((1e12 + k * I) * 1e6)), 0, new Uint8Array([k])), k * I);
  }
  const r = s.interpolate(60 * I);
  assert.equal(r.underrun, false);
  assert.equal(r.to.tick, r.from.tick + 1);
  assert.ok(r.alpha >= 0 && r.alpha <= 1);
  assert.ok(r.renderTime >= r.from.time && r.renderTime < r.to.time);
  const later = s.interpolate(60 * I + 1000);
  assert.equal(later.underrun, true);
  assert.equal(later.from.tick, 60);
});
