package netcode

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/roomwire/roomwire/netcode/token"
	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/reliable"
	"github.com/roomwire/roomwire/unreliable"
)

// Conn is the server's side of one client connection. Its methods are safe
// for concurrent use and never block on the network: sends are queued and
// written by the connection's own goroutines.
type Conn struct {
	peer
	srv       *Server
	id        ID
	identity  Identity
	budget    *budget
	transport transportKind
	// handedOver: this handshaking connection's transport resumed another
	// connection, which now owns it.
	handedOver bool
	// parkedNum is rdNum at the last parkReads (see frameAt below).
	parkedNum uint32
	// challenge is the CHALLENGE sent on a transport.Challenged session,
	// which the client's token proof is bound to (nil elsewhere).
	challenge *[reliable.ChallengeLen]byte
	// The newest input handed to the application, 1<<32 | its number, or
	// 0 before the first (written by the datagram goroutine; a handoff
	// reads it).
	lastInput atomic.Uint64
	data      atomic.Pointer[any]
	// sres is the server's side of resume; nil where resume is off.
	sres *serverResume
	// What serveReads needs across the read loop's goroutines: the
	// admission to give back, and parkReads and its wake-up, made once.
	leave    func()
	park     func() bool
	readMore func()
	// The read loop's view of how dense the stream's frames are: with
	// parkedNum above, frameAt and prevAt (monotonic nanoseconds) are
	// when it saw the newest frames.
	frameAt, prevAt int64
}

// readHoldGap is the gap between frames under which the read loop keeps
// its goroutine instead of parking: a stream this busy would start a new
// goroutine for nearly every frame, which costs each of them its start
// (a request's round trip on KCP rose by a third); an idle one, whose
// frames come seconds apart, parks after each. A stream that falls idle
// right after two close frames keeps its goroutine until its next frame
// (a clock PING within 30 s at most).
const readHoldGap = 50 * time.Millisecond

// readLoopStarts counts the read loops started again after parking, in
// every server of the process (a test checks that busy streams do not).
var readLoopStarts atomic.Uint64

// monoStart anchors monoNow.
var monoStart = time.Now()

// monoNow is monotonic time in nanoseconds since the package started.
func monoNow() int64 { return monoAt(time.Now()) }

// monoAt is t in monoNow's units, for a caller that read the clock once.
func monoAt(t time.Time) int64 { return int64(t.Sub(monoStart)) }

// challengeBytes is the CHALLENGE sent, or nil where none was.
func (c *Conn) challengeBytes() []byte {
	if c.challenge == nil {
		return nil
	}
	return c.challenge[:]
}

// ID is the connection's random, unguessable id.
func (c *Conn) ID() ID { return c.id }

// Identity is what the server's Authenticate hook returned for the client.
func (c *Conn) Identity() Identity { return c.identity }

// RemoteAddr is the client's network address.
func (c *Conn) RemoteAddr() net.Addr { return c.session().RemoteAddr() }

// Context is cancelled when the connection closes; its cause is the
// *CloseError.
func (c *Conn) Context() context.Context { return c.ctx }

// Err is the reason the connection closed, or nil while it is open.
func (c *Conn) Err() error { return c.err() }

// Stats returns the connection's counters.
func (c *Conn) Stats() Stats { return c.statsNow() }

// Data returns the value last stored with SetData, or nil.
func (c *Conn) Data() any {
	if p := c.data.Load(); p != nil {
		return *p
	}
	return nil
}

// SetData keeps an application value with the connection.
func (c *Conn) SetData(v any) { c.data.Store(&v) }

// Emit sends a reliable event to the client. It fails once the connection is
// closed, for an invalid name or a payload over the frame limit, and with
// ErrSlowConsumer (closing the connection) when too much is queued.
func (c *Conn) Emit(event string, payload []byte) error {
	return c.emit(event, payload)
}

// SendFrames queues reliable frames that were encoded once for many
// connections (see AppendEvent); rooms use it to broadcast without
// re-encoding per member.
func (c *Conn) SendFrames(frames []byte) error { return c.sendFrames(frames) }

// SendSnapshot sends s to the client as datagrams, or queues it, replacing
// an unsent older snapshot, when the transport cannot take it without
// waiting. It never blocks; the connection holds its own reference.
func (c *Conn) SendSnapshot(s *Snapshot) { c.dq.sendSnapshotNow(s, nil) }

// SendSnapshotBatch is SendSnapshot for one of many connections sent to in
// a round, such as a room's members at a tick: datagrams that the
// transport can write together with other connections' wait in b until
// b.Flush, which the caller calls after the round.
func (c *Conn) SendSnapshotBatch(s *Snapshot, b *Batch) { c.dq.sendSnapshotNow(s, &b.b) }

// Batch collects the snapshot datagrams one goroutine sends to many
// connections in a round, so that connections sharing a UDP socket get
// them in one system call (sendmmsg) instead of one each. Transports that
// cannot batch send at once and ignore it. A Batch belongs to one goroutine
// at a time; the zero value is ready, and reusing it does not allocate.
type Batch struct{ b transport.Batch }

// Flush writes the datagrams b holds and empties it.
func (b *Batch) Flush() { _ = b.b.Flush() }

// Close closes the connection with CloseKicked and the given reason, which
// the client receives. It does not block and is idempotent.
func (c *Conn) Close(reason string) {
	c.close(&CloseError{Code: CloseKicked, Reason: reason})
}

// AppendEvent appends an encoded EVENT frame to b, for Conn.SendFrames.
func AppendEvent(b []byte, event string, payload []byte) ([]byte, error) {
	return reliable.AppendEvent(b, event, payload)
}

func (s *Server) serveConn(sess transport.Session) {
	reading := false // serveReads ends the connection, and this goroutine's count
	defer func() {
		if !reading {
			s.wg.Done()
		}
	}()
	s.metrics.connsAccepted.Add(1)
	// The admission limits come first, before any of the connection's
	// state or goroutines exist.
	leave, refused := s.admitConn(sess)
	if refused != nil {
		s.refuse(sess, refused)
		return
	}
	defer func() {
		if !reading {
			leave()
		}
	}()
	c := &Conn{srv: s, id: newID(), budget: s.newBudget(), transport: sessionKind(sess)}
	c.init(sess, s.cfg.MaxFrame, s.cfg.MaxQueued, s.cfg.ReliableCopies, s.cfg.Logger)
	c.prepareResume()
	c.dispatch = c.dispatchFrame
	c.dq.snaps = &snapshotSender{codec: s.codec}
	// Bound before the connection is registered: Close may reach it from
	// then on and start its writer, which reads the write deadline.
	r := reliable.NewReader(countingReader{&c.peer}, s.cfg.MaxFrame)
	c.bound(r, s.cfg.FrameTimeout, s.cfg.WriteTimeout)
	s.connsMu.Lock()
	busy := len(s.handshaking) >= s.cfg.MaxPendingHandshakes
	if !busy {
		s.handshaking[c] = struct{}{}
	}
	s.connsMu.Unlock()
	if busy {
		c.cancel(nil) // nothing of c started
		s.refuse(sess, refusedPending)
		return
	}
	if s.closing.Load() {
		c.close(&CloseError{Code: CloseGoingAway, Reason: "server shutting down"})
	}

	if _, ok := sess.(transport.Challenged); ok {
		c.challenge = new([reliable.ChallengeLen]byte)
		_, _ = rand.Read(c.challenge[:])
		c.out.unnumbered(reliable.AppendChallenge(nil, *c.challenge))
	}
	timer := time.AfterFunc(s.cfg.HandshakeTimeout, func() {
		c.close(&CloseError{Code: CloseHandshakeTimeout, Reason: fmt.Sprintf("no HELLO accepted within %v", s.cfg.HandshakeTimeout)})
	})
	ok := c.handshake(r)
	timer.Stop()
	if c.handedOver {
		c.detached.Store(true)
		c.cancel(nil)
		c.finish()
		s.connsMu.Lock()
		delete(s.handshaking, c)
		s.connsMu.Unlock()
		return
	}
	if !ok {
		s.metrics.handshakesFailed.Add(1)
		outcome := closeName(CloseInternal)
		ce := c.closeErr.Load()
		if ce != nil {
			outcome = closeName(ce.Code)
			s.metrics.closes.Add(outcome, 1)
		}
		s.transports[c.transport].handshakes.Add(outcome, 1)
		c.log.Debug("handshake failed", "remote", sess.RemoteAddr(), "reason", ce)
		c.finish()
		// A refused connection counts as handshaking until its refusal is
		// flushed and its goroutines are gone, so its counters are final.
		s.connsMu.Lock()
		delete(s.handshaking, c)
		s.ended(c)
		s.connsMu.Unlock()
		return
	}
	s.connsMu.Lock()
	delete(s.handshaking, c)
	s.conns[c.id] = c
	s.connsMu.Unlock()
	s.transports[c.transport].handshakes.Add("accepted", 1)

	s.metrics.connsActive.Add(1)
	c.startReceiving(true, c.onDatagram, c.handleDatagram)
	if s.closing.Load() {
		c.close(&CloseError{Code: CloseGoingAway, Reason: "server shutting down"})
	}
	c.callHooks(&s.onConnect)
	c.out.uncork()

	reading, c.leave = true, leave
	c.rd = r
	c.park = c.parkReads
	c.prevAt = -int64(readHoldGap) // no frames yet: free to park
	serve := c.serveReads          // bound once: a read loop's start allocates nothing
	c.readMore = func() {
		readLoopStarts.Add(1)
		s.readers.run(serve)
	}
	// The read loop goes on in a new goroutine, and this one ends: its
	// stack grew in the handshake, and a goroutine's stack shrinks only at
	// collections, which an idle server seldom runs. A connection that
	// reads on one goroutine for its lifetime (a transport with no
	// ReadNotifier to park on, such as WebSocket off Linux) would keep
	// that stack as long as it lives.
	go c.serveReads()
}

// serveReads runs the connection's read loop on its goroutine. When the
// loop ends, so does the connection: serveReads ends it (connEnded), then
// gives back its admission and its count in the server's goroutines. On a
// transport that says when its stream is readable, the loop also ends
// while the stream is idle, and goes on when there is more to read
// (parkReads), on one of the server's warm goroutines (warmPool): an idle
// player costs the server no goroutine, whose stack would be most of its
// memory.
func (c *Conn) serveReads() {
	ce := c.readFrames(c.park)
	if ce == nil {
		return // parked: readMore goes on
	}
	c.srv.connEnded(c, ce)
	c.leave()
	c.srv.wg.Done()
}

// parkReads lets the read loop's goroutine end if the current transport
// calls readMore once its stream has something to read.
func (c *Conn) parkReads() bool {
	if c.rdNum != c.parkedNum { // frames were read since the last call
		c.parkedNum = c.rdNum
		c.prevAt, c.frameAt = c.frameAt, monoNow()
	}
	if c.frameAt-c.prevAt < int64(readHoldGap) {
		return false
	}
	n, ok := c.session().(transport.ReadNotifier)
	return ok && c.rd.Park() && n.NotifyReadable(c.readMore)
}

// connEnded ends a connection whose read loop returned ce: its goroutines
// are waited for, it is forgotten and counted, and the disconnect hooks
// run.
func (s *Server) connEnded(c *Conn, ce *CloseError) {
	c.finish()
	if c.sres != nil {
		c.sres.refreshAt.Store(0)
	}

	s.connsMu.Lock()
	delete(s.conns, c.id)
	s.ended(c)
	s.connsMu.Unlock()
	s.metrics.connsActive.Add(-1)
	s.metrics.closes.Add(closeName(ce.Code), 1)
	switch ce.Code {
	case CloseProtocolError, CloseFrameTooLarge:
		s.metrics.protocolErrors.Add(1)
	case CloseSlowConsumer:
		s.metrics.slowConsumers.Add(1)
	}
	c.log.Debug("connection closed", "id", c.id, "reason", ce)
	s.mu.RLock()
	dhooks := s.onDisconnect
	s.mu.RUnlock()
	for _, f := range dhooks {
		c.callDisconnect(f, ce)
	}
}

// handshake reads the HELLO, authenticates and answers WELCOME. On failure
// the connection is closed with the reason and handshake returns false.
func (c *Conn) handshake(r *reliable.Reader) bool {
	f, err := r.Next()
	if err != nil {
		c.close(c.readError(err))
		return false
	}
	if f.Type == reliable.FrameResume {
		if ce := c.srv.resume(c, f); ce != nil {
			c.close(ce)
		} else {
			c.handedOver = true
		}
		return false
	}
	if f.Type != reliable.FrameHello {
		c.close(&CloseError{Code: CloseProtocolError, Reason: fmt.Sprintf("first frame is %s, want HELLO", f.Type)})
		return false
	}
	if f.Version != reliable.Version {
		c.close(&CloseError{Code: CloseVersionMismatch, Reason: fmt.Sprintf("protocol version %d not supported; server speaks %d", f.Version, reliable.Version)})
		return false
	}
	h := Hello{Version: f.Version, Auth: append([]byte(nil), f.Payload...), RemoteAddr: c.session().RemoteAddr()}
	if ts, ok := c.session().(interface{ TokenClaims() *token.Claims }); ok {
		h.Token = ts.TokenClaims() // the transport checked it in its own handshake
		if h.Token.Ticket {
			c.srv.Drop("ticket_as_token")
			c.close(&CloseError{Code: CloseRefused, Reason: reasonTicketAsToken})
			return false
		}
	} else if c.srv.tokens != nil {
		cl, appAuth, err := c.srv.tokens.check(f.Payload, c.session(), c.challengeBytes(), time.Now())
		if err != nil {
			c.log.Info("connect token refused", "remote", c.session().RemoteAddr(), "err", err)
			r := tokenRefusal(err)
			c.srv.Drop(r.drop)
			c.close(&CloseError{Code: CloseRefused, Reason: r.reason})
			return false
		}
		h.Token, h.Auth = cl, appAuth
	}
	c.identity.Token = h.Token
	if auth := c.srv.cfg.Authenticate; auth != nil {
		ctx, cancel := context.WithTimeout(c.ctx, c.srv.cfg.HandshakeTimeout)
		id, err := auth(ctx, h)
		cancel()
		if err != nil {
			c.close(&CloseError{Code: CloseRefused, Reason: err.Error()})
			return false
		}
		id.Token = h.Token
		c.identity = id
	}
	if c.err() != nil {
		return false // timed out while authenticating
	}
	// The WELCOME waits in the corked queue until the connection is
	// registered and its connect hooks ran (serveConn uncorks), so a client
	// that has its WELCOME finds the server ready: its id known, its private
	// room joined.
	c.out.cork()
	b, ok := c.out.begin()
	if !ok {
		return false
	}
	b = reliable.AppendWelcome(b, reliable.Version, c.id, uint16(c.session().MaxDatagram()))
	return c.enqueued(c.out.end(b)) == nil
}

// dispatchFrame runs the handler for an EVENT or REQUEST.
func (c *Conn) dispatchFrame(f reliable.Frame) {
	s := c.srv
	if f.Type == reliable.FrameEvent && string(f.Name) == resumeName {
		c.grantResume()
		return
	}
	if !c.admitEvent(f.Name, len(f.Payload), true) {
		if f.Type == reliable.FrameRequest {
			_ = c.reply(f.ID, nil, overBudget{string(f.Name)})
		}
		return
	}
	if f.Type == reliable.FrameEvent {
		h := s.lookupEvent(f.Name)
		if h == nil {
			s.metrics.eventsUnhandled.Add(1)
			return
		}
		c.callEvent(h, f.Payload)
		return
	}
	h := s.lookupRequest(f.Name)
	if h == nil {
		s.metrics.requestsUnhandled.Add(1)
		_ = c.reply(f.ID, nil, fmt.Errorf("no handler for %q", f.Name))
		return
	}
	reply, herr := c.callRequest(h, f.Payload)
	_ = c.reply(f.ID, reply, herr)
}

// The call* helpers run application code, recovering a panic: it is logged
// and counted and the connection goes on.

func (c *Conn) recovered(what string, r any) {
	c.srv.metrics.handlerPanics.Add(1)
	c.log.Error("recovered panic in "+what, "conn", c.id, "panic", r, "stack", string(debug.Stack()))
}

func (c *Conn) callEvent(h EventHandler, p []byte) {
	c.hmu.Lock()
	defer c.hmu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			c.recovered("event handler", r)
		}
	}()
	h(c, p)
}

func (c *Conn) callInput(h InputHandler, p []byte) {
	defer func() {
		if r := recover(); r != nil {
			c.recovered("input handler", r)
		}
	}()
	h(c, p)
}

func (c *Conn) callRequest(h RequestHandler, p []byte) (reply []byte, err error) {
	c.hmu.Lock()
	defer c.hmu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			c.recovered("request handler", r)
			reply, err = nil, errors.New("internal error in request handler")
		}
	}()
	return h(c, p)
}

// callHooks runs the server's callbacks of one kind (onConnect, onAway,
// onBack), read under its lock, one after another.
func (c *Conn) callHooks(list *[]func(*Conn)) {
	c.srv.mu.RLock()
	hooks := *list
	c.srv.mu.RUnlock()
	for _, f := range hooks {
		c.callHook(f)
	}
}

func (c *Conn) callHook(f func(*Conn)) {
	defer func() {
		if r := recover(); r != nil {
			c.recovered("connect hook", r)
		}
	}()
	f(c)
}

func (c *Conn) callDisconnect(f func(*Conn, *CloseError), ce *CloseError) {
	defer func() {
		if r := recover(); r != nil {
			c.recovered("disconnect hook", r)
		}
	}()
	f(c, ce)
}

// onDatagram admits and parses one datagram from the client, whose
// acknowledgements it records; ok is false when it was refused or
// malformed (counted).
func (c *Conn) onDatagram(d []byte) (h unreliable.Header, body []byte, ok bool) {
	now := time.Now() // one reading for the budget and the acks
	if !c.spend(c.budget.datagramsBucket(), now, 1) {
		return h, nil, false
	}
	if h, body, ok = c.parseDatagram(d, now); !ok {
		c.srv.metrics.datagramsBad.Add(1)
	}
	return h, body, ok
}

// handleDatagram handles a parsed datagram from the client: inputs go to
// the input handler once each and in order, acknowledgements move the
// snapshot baseline, unreliable events go to their handlers; anything else
// is dropped and counted.
func (c *Conn) handleDatagram(h unreliable.Header, body []byte) {
	var err error
	switch h.Kind {
	case unreliable.KindInput:
		var a unreliable.SnapshotAck
		a, err = unreliable.ParseInputs(body, c.input)
		if err == nil {
			c.dq.snaps.ack(a)
		}
	case unreliable.KindAck:
		var a unreliable.SnapshotAck
		if a, _, err = unreliable.ParseAck(body); err == nil {
			c.dq.snaps.ack(a)
		}
	case unreliable.KindReliable:
		if c.onCopies(body) {
			err = unreliable.ErrBadCopies
		}
	case unreliable.KindEvent:
		var ev unreliable.Event
		var ok bool
		if ev, ok, err = c.acceptEvent(body); ok && c.err() == nil && c.admitEvent(ev.Name, 0, false) {
			if h := c.srv.lookupEvent(ev.Name); h != nil {
				c.callEvent(h, ev.Payload)
			} else {
				c.srv.metrics.eventsUnhandled.Add(1)
			}
		}
	default:
		err = unreliable.ErrUnknownKind // a SNAPSHOT from a client
	}
	if err != nil {
		c.stats.datagramsBad.Add(1)
		c.srv.metrics.datagramsBad.Add(1)
	}
}

// input hands one input to the input handler unless it was handed already:
// each INPUT datagram repeats the client's last few inputs.
func (c *Conn) input(in unreliable.Input) {
	if last := c.lastInput.Load(); last != 0 && in.Seq-uint32(last)-1 >= 1<<31 { // in.Seq <= the last, wrapping
		c.stats.inputsRedundant.Add(1)
		c.srv.metrics.inputsRedundant.Add(1)
		return
	}
	c.lastInput.Store(1<<32 | uint64(in.Seq))
	c.stats.inputsReceived.Add(1)
	c.srv.metrics.inputsReceived.Add(1)
	if h := c.srv.inputHandler(); h != nil {
		c.callInput(h, in.Data)
	}
}

// EmitUnreliable sends an event as a datagram: it may be lost, duplicated
// or reordered, and is never resent. The client's handler for the name
// receives it like a reliable event.
func (c *Conn) EmitUnreliable(event string, payload []byte) error {
	return c.emitDatagram(event, payload, false, c.session().MaxDatagram())
}

// EmitLatest sends an event as a sequenced datagram: the client drops one
// older than the newest of the same name it received, so only fresh state
// is applied.
func (c *Conn) EmitLatest(event string, payload []byte) error {
	return c.emitDatagram(event, payload, true, c.session().MaxDatagram())
}
