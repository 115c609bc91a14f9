// The client's handshake, requests, events, snapshots, acknowledgements and
// inputs against a scripted server on an in-memory session.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import * as rw from "../roomwire.js";

const text = (s) => new TextEncoder().encode(s);
const str = (b) => new TextDecoder().decode(b);
const concat = (...parts) => Uint8Array.from(parts.flatMap((p) => [...p]));
const tick = () => new Promise((r) => setTimeout(r, 5));

// A session whose far end is a scripted server: frames and datagrams the
// client sends are decoded into server.frames and server.datagrams.
function fakeSession() {
  const server = { frames: [], datagrams: [], reader: new rw.FrameReader(), closed: null, seq: 0 };
  const session = Object.assign(rw.sessionBase("fake", "fake://", 1200), {
    sendReliable(b) {
      server.reader.push(b);
      for (let f; (f = server.reader.next());) {
        const p = rw.parseFrame(f.type, f.body);
        server.frames.push(p);
        if (server.onFrame) server.onFrame(p);
      }
    },
    sendDatagram(d) {
      server.datagrams.push(rw.parseDatagram(d));
      return true;
    },
    close(code, reason) {
      server.closed = [code, reason];
    },
  });
  server.send = (b) => setTimeout(() => session.deliver("onReliable", b), 0);
  server.datagram = (kind, body, ack = 0, bits = 0) => {
    server.seq++;
    const d = rw.encodeDatagram(kind, server.seq, ack, bits, body);
    setTimeout(() => session.deliver("onDatagram", d), 0);
  };
  server.lastDatagram = () => server.datagrams[server.datagrams.length - 1];
  return { server, session };
}

function devToken() {
  return {
    wire: new Uint8Array(1066).fill(0x11),
    clientToServerKey: new Uint8Array(32).fill(0x80),
    serverToClientKey: new Uint8Array(32).fill(0xa0),
    expires: 0,
  };
}

const id = rw.fromHex("3f9a0c51d2e847b6a1c4e07f5b2d9e83");

// Every client closes at the end, so that no clock timer keeps the process.
const clients = [];
after(() => clients.forEach((c) => c.close()));

async function connected(opts = {}) {
  const { server, session } = fakeSession();
  const token = devToken();
  const challenge = crypto.getRandomValues(new Uint8Array(32));
  server.onFrame = async (f) => {
    if (f.type !== rw.Frame.HELLO) return;
    const proof = await rw.tokenProof(token.clientToServerKey, challenge);
    assert.deepEqual(f.auth.subarray(0, 1066), token.wire);
    assert.deepEqual(f.auth.subarray(1066, 1098), proof);
    assert.equal(str(f.auth.subarray(1098)), "app");
    server.send(rw.encodeWelcome(1, id, 1200));
  };
  const client = new rw.Client({ token, auth: text("app"), ...opts });
  clients.push(client);
  const opened = client.open(session);
  server.send(rw.encodeChallenge(challenge));
  await opened;
  server.onFrame = null;
  return { client, server };
}

test("handshake: CHALLENGE, HELLO with the token proof bound to it, WELCOME", async () => {
  const { client, server } = await connected();
  assert.equal(client.id, "3f9a0c51d2e847b6a1c4e07f5b2d9e83");
  assert.equal(client.maxDatagram, 1200);
  assert.equal(server.frames[0].type, rw.Frame.HELLO);
  assert.equal(server.frames[1].type, rw.Frame.PING, "the clock's first PING follows WELCOME");
  client.close();
  assert.deepEqual(server.closed, [0, "client closed"]);
  assert.equal(server.frames[server.frames.length - 1].type, rw.Frame.CLOSE);
});

test("what a session delivers before the client attaches (a CHALLENGE at once) is handed over in order", async () => {
  const { server, session } = fakeSession();
  const challenge = new Uint8Array(32).fill(3);
  server.onFrame = (f) => {
    if (f.type === rw.Frame.HELLO) server.send(rw.encodeWelcome(1, id, 1200));
  };
  session.deliver("onReliable", rw.encodeChallenge(challenge).subarray(0, 10));
  session.deliver("onReliable", rw.encodeChallenge(challenge).subarray(10));
  const c = new rw.Client({});
  clients.push(c);
  await c.open(session);
  assert.equal(c.id, "3f9a0c51d2e847b6a1c4e07f5b2d9e83");
});

test("handshake: a refusal rejects with the server's code and reason; a first frame other than CHALLENGE is a protocol error", async () => {
  {
    const { server, session } = fakeSession();
    const c = new rw.Client({ token: devToken() });
    const p = c.open(session);
    server.send(rw.encodeChallenge(new Uint8Array(32)));
    await tick();
    server.send(rw.encodeClose(6, "connect token refused"));
    await assert.rejects(p, (e) => e instanceof rw.CloseError && e.code === 6 && e.reason === "connect token refused" && e.remote);
  }
  {
    const { server, session } = fakeSession();
    const c = new rw.Client({});
    const p = c.open(session);
    server.send(rw.encodeWelcome(1, id, 1200));
    await assert.rejects(p, (e) => e.code === 2 && e.reason === "first frame is WELCOME, want CHALLENGE");
    assert.deepEqual(server.closed, [2, "first frame is WELCOME, want CHALLENGE"]);
    assert.equal(server.frames[0].type, rw.Frame.CLOSE);
  }
  {
    const { server, session } = fakeSession();
    const c = new rw.Client({ connectTimeout: 30 });
    const p = c.open(session);
    void server;
    await assert.rejects(p, (e) => e.code === 0 && e.reason === "connect cancelled");
  }
});

test("requests: reply, REPLY_ERROR as RemoteError, a typed timeout, answers matched by id", async () => {
  const { client, server } = await connected();
  server.onFrame = (f) => {
    if (f.type === rw.Frame.REQUEST && f.name === "ping") server.send(rw.encodeReply(f.id, f.payload));
    if (f.type === rw.Frame.REQUEST && f.name === "nope") server.send(rw.encodeReplyError(f.id, 'no handler for "nope"'));
    if (f.type === rw.Frame.PING) server.send(rw.encodePong(f.time, f.time + 1000n));
  };
  const [a, b] = await Promise.all([client.request("ping", text("a")), client.request("ping", "b")]);
  assert.deepEqual([str(a), str(b)], ["a", "b"]);
  await assert.rejects(client.request("nope", null), (e) => e instanceof rw.RemoteError && e.remoteMessage === 'no handler for "nope"' && e.event === "nope");
  await assert.rejects(client.request("slow", null, { timeout: 20 }), (e) => e instanceof rw.RequestTimeoutError && e.timeout === 20);
  // A server REQUEST is answered with REPLY_ERROR.
  server.send(rw.encodeRequest(7, "hey", null));
  await tick();
  const re = server.frames.find((f) => f.type === rw.Frame.REPLY_ERROR);
  assert.deepEqual([re.id, str(re.payload)], [7, "client has no request handlers"]);
  // A server PING is answered with a PONG echoing it.
  server.send(rw.encodePing(123n));
  await tick();
  assert.equal(server.frames.find((f) => f.type === rw.Frame.PONG).echo, 123n);
  const pending = client.request("slow", null);
  server.send(rw.encodeClose(9, "cheating"));
  await assert.rejects(pending, (e) => e instanceof rw.CloseError && e.code === 9);
});

test("join and leave: the $join payload and reply of 6.2, $leave of 6.3", async () => {
  const { client, server } = await connected();
  server.onFrame = (f) => {
    if (f.type !== rw.Frame.REQUEST) return;
    if (f.name === "$join") {
      assert.equal(rw.toHex(f.payload), "056172656e61");
      server.send(rw.encodeReply(f.id, rw.fromHex("076172656e612d311e00100001")));
    }
    if (f.name === "$leave") {
      assert.equal(f.payload.length, 0);
      server.send(rw.encodeReply(f.id, null));
    }
  };
  const room = await client.join("arena");
  assert.deepEqual(room, { kind: "arena", name: "arena-1", tickRate: 30, maxMembers: 16, members: 1 });
  assert.equal(client.stats().room, "arena-1");
  await client.leave();
  assert.equal(client.room, null);
});

test("join: a cluster's redirect (6.2) rejects with a RedirectError carrying the owner's URLs and the seat", async () => {
  const { client, server } = await connected();
  server.onFrame = (f) => {
    if (f.type === rw.Frame.REQUEST && f.name === "$join") {
      // 0 | 2 URLs: "quic://a:1", "ws://a/ws" | seat bytes 01 02 03
      server.send(rw.encodeReply(f.id, concat([0, 2, 10], text("quic://a:1"), [9], text("ws://a/ws"), [1, 2, 3])));
    }
  };
  await assert.rejects(client.join("arena", "lobby"), (e) =>
    e instanceof rw.RedirectError && e.room === "lobby" && e.urls.join(" ") === "quic://a:1 ws://a/ws" && rw.toHex(e.seat) === "010203");
  assert.equal(client.room, null);
});

test("events: reliable and unreliable reach the same handler; sequenced ones drop stale copies", async () => {
  const { client, server } = await connected();
  const got = [];
  client.on("chat", (p, name) => got.push(`${name}:${str(p)}`));
  server.send(rw.encodeEvent("chat", text("hi")));
  server.datagram(rw.Kind.EVENT, rw.encodeEventBody(false, 0, "chat", "u1"));
  server.datagram(rw.Kind.EVENT, rw.encodeEventBody(true, 3, "chat", "s3"));
  server.datagram(rw.Kind.EVENT, rw.encodeEventBody(true, 2, "chat", "s2"));
  server.datagram(rw.Kind.EVENT, rw.encodeEventBody(true, 4, "other", "x"));
  await tick();
  assert.deepEqual(got, ["chat:hi", "chat:u1", "chat:s3"]);
  const st = client.stats();
  assert.equal(st.datagramsStale, 1);
  assert.equal(st.unhandled, 1);
  // What the client sends.
  client.emitLatest("aim", text("a"));
  client.emitLatest("aim", text("b"));
  client.emitUnreliable("boom", null);
  const evs = server.datagrams.filter((d) => d.kind === rw.Kind.EVENT).map((d) => rw.parseEventBody(d.body));
  assert.deepEqual(evs.map((e) => [e.sequenced, e.seq, e.name]), [[true, 1, "aim"], [true, 2, "aim"], [false, 0, "boom"]]);
  assert.throws(() => client.emitUnreliable("big", new Uint8Array(1200 - 13 - 3 + 1)), /> 1200/);
});

test("snapshots: whole then delta, ACKs, inputs resent until acknowledged", async () => {
  const { client, server } = await connected();
  const ticks = [];
  client.onSnapshot((t, data) => ticks.push([t, rw.toHex(data)]));
  const env = (t, base, payload) => rw.encodeEnvelope(BigInt(t) * 33333333n, base, payload);
  const snap = (t, base, payload, ack = 0, bits = 0) => {
    const body = rw.fragmentSnapshot(env(t, base, payload), t, 1, 1)[0].subarray(9);
    server.datagram(rw.Kind.SNAPSHOT, body, ack, bits);
  };
  snap(10, 0, rw.fromHex("aabbcc"));
  await tick();
  let d = server.lastDatagram();
  assert.equal(d.kind, rw.Kind.ACK, "a snapshot with no input since: ACK");
  assert.equal(rw.toHex(d.body), "010000000a");
  assert.equal(d.ack, server.seq, "the header acknowledges the server's datagram");

  client.sendInput(new Uint8Array([1, 2]));
  client.sendInput(new Uint8Array([3, 4]));
  d = server.lastDatagram();
  assert.equal(d.kind, rw.Kind.INPUT);
  let inp = rw.parseInputs(d.body);
  assert.deepEqual([inp.ackEpoch, inp.ackTick], [1, 10]);
  assert.deepEqual(inp.inputs.map((i) => i.seq), [1, 2], "input 1 again: not acknowledged yet");
  const inputSeq = d.seq;

  // The next snapshot is a delta and acknowledges the datagram with input 2.
  snap(11, 1, rw.encodeDelta(rw.fromHex("aabbcc"), rw.fromHex("aabbdd")), inputSeq, 0);
  await tick();
  assert.equal(server.lastDatagram().seq, inputSeq, "an INPUT went out since the last snapshot: no ACK");
  client.sendInput(new Uint8Array([5, 6]));
  inp = rw.parseInputs(server.lastDatagram().body);
  assert.deepEqual(inp.inputs.map((i) => i.seq), [3], "1 and 2 arrived");
  assert.deepEqual([inp.ackEpoch, inp.ackTick], [1, 11]);

  // A delta against a tick not held: undecodable, and the client says what it holds.
  snap(13, 1, rw.encodeDelta(rw.fromHex("00"), rw.fromHex("01")));
  await tick();
  d = server.lastDatagram();
  assert.equal(d.kind, rw.Kind.INPUT, "input 3 not acknowledged: sent again in place of the ACK");
  assert.deepEqual(rw.parseInputs(d.body).inputs.map((i) => i.seq), [3]);
  snap(14, 3, rw.encodeDelta(rw.fromHex("aabbdd"), rw.fromHex("ffbbdd")), d.seq, 0);
  await tick();
  d = server.lastDatagram();
  assert.equal(d.kind, rw.Kind.ACK);
  assert.equal(rw.toHex(d.body), "010000000e");

  assert.deepEqual(ticks, [[10, "aabbcc"], [11, "aabbdd"], [14, "ffbbdd"]]);
  const st = client.stats();
  assert.equal(st.snapshotsReceived, 3);
  assert.equal(st.deltasReceived, 2);
  assert.equal(st.wholeReceived, 1);
  assert.equal(st.snapshotsUndecodable, 1);
  assert.equal(st.inputsAcked, 3);
  assert.ok(st.rtt >= 0 && st.datagramsAcked === 2, "the two INPUT datagrams the server acknowledged");
  const r = client.interpolate(performance.now());
  assert.ok(r && r.from && r.to);

  // Bad datagrams are counted, never fatal.
  server.datagram(rw.Kind.INPUT, new Uint8Array(6));
  await tick();
  assert.equal(client.stats().datagramsBad, 1);
  assert.equal(client.state, "open");
});

test("onDisconnect hears the server's CLOSE once; a frame over the limit closes with code 3", async () => {
  {
    const { client, server } = await connected();
    const seen = [];
    client.onDisconnect((code, reason, remote) => seen.push([code, reason, remote]));
    server.send(rw.encodeClose(1, "server shutting down"));
    await tick();
    client.close();
    assert.deepEqual(seen, [[1, "server shutting down", true]]);
    assert.throws(() => client.emit("x", null), (e) => e instanceof rw.CloseError && e.code === 1);
  }
  {
    const { client, server } = await connected({ maxFrame: 1024 });
    const seen = [];
    client.onDisconnect((code, reason, remote) => seen.push([code, reason, remote]));
    server.send(rw.encodeEvent("big", new Uint8Array(2000)));
    await tick();
    assert.deepEqual(seen, [[3, "reliable: frame too large: EVENT body of 2004 bytes > limit 1024", false]]);
    assert.equal(server.frames[server.frames.length - 1].code, 3);
  }
});
