package netcode

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roomwire/roomwire/netcode/token"
	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/reliable"
)

// serverResume is a server connection's side of resume: its current
// ticket and the hand-over of a resumed transport to the connection's
// owner goroutine.
type serverResume struct {
	mu       sync.Mutex
	tag      [16]byte // the current ticket's tag; zero: none to use
	resuming bool     // a RESUME won and is being taken over
	offers   chan resumeOffer
	// refreshAt is when the next ticket is due (unix nanoseconds, 0:
	// none), sent by the housekeeping (refreshTicket).
	refreshAt atomic.Int64
	lastIn    uint64    // watchSilence's own
	inAt      time.Time // watchSilence's own
	watched   *sessBox  // watchSilence's own: the transport inAt is about
}

// resumeOffer is a new transport whose RESUME passed the checks.
type resumeOffer struct {
	sess     transport.Session
	received uint32
}

// Away reports whether the connection's transport is gone and the server
// waits for its client to resume it.
func (c *Conn) Away() bool { return c.isAway.Load() }

// prepareResume sets up what a grant of resume needs, before any of the
// connection's goroutines start (unless resume is off), so that the grant
// later only switches it on.
func (c *Conn) prepareResume() {
	if c.srv.cfg.ResumeWindow < 0 {
		return
	}
	c.res = newResumeState(&c.peer, c.srv.cfg.MaxQueued)
	c.sres = &serverResume{offers: make(chan resumeOffer, 1)}
	c.away = c.awaitResume
}

// grantResume answers a client's $resume request: from now on both sides
// keep what they send until it is acknowledged, and the client gets the
// window and its first ticket.
func (c *Conn) grantResume() {
	if c.res == nil || c.res.on() { // off, or granted already (events are handled in order)
		return
	}
	c.sendTicket(true)
}

// sendTicket mints a ticket and sends it in a $resume event; start also
// begins keeping frames, from the event's own.
func (c *Conn) sendTicket(start bool) {
	s := c.srv
	p := token.Params{ProtocolID: s.ticketProto, TTL: ticketLife}
	if cl := c.identity.Token; cl != nil {
		p.ClientID, p.UserData, p.Timeout = cl.ClientID, cl.UserData, cl.Timeout
	}
	tok, err := token.Issue(s.ticketKey, p, time.Now())
	if err != nil {
		c.log.Error("resume ticket", "err", err)
		return
	}
	wire, err := tok.MarshalBinary()
	if err != nil {
		return
	}
	payload := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(wire)), uint32(s.cfg.ResumeWindow/time.Millisecond))
	payload = append(payload, wire...)
	c.sres.mu.Lock()
	copy(c.sres.tag[:], tok.Private[len(tok.Private)-16:])
	c.sres.mu.Unlock()
	b, ok := c.out.begin()
	if !ok {
		return
	}
	if start {
		c.res.start(c.out.frames)
	}
	b, err = reliable.AppendEvent(b, resumeName, payload)
	if err != nil {
		c.out.abort()
		return
	}
	_ = c.enqueued(c.out.end(b))
	if start {
		c.sres.inAt = time.Now() // before the watch runs
		c.res.enabled.Store(true)
		c.sres.refreshLater()
	}
}

// watchSilence, every second (housekeepLoop), closes the transport of a
// connection that sent nothing for silentAfter (its client or its
// transport keeps alive, PROTOCOL.md 14), so that the session is away at
// once rather than after the transport's own timeout.
func (c *Conn) watchSilence() {
	if c.err() != nil {
		return
	}
	heard, _, _ := liveness(c.session(), false)
	in := c.stats.bytesReceived.Load() + c.stats.datagramsReceived.Load() + heard
	now := time.Now()
	if box := c.cur.Load(); in != c.sres.lastIn || c.isAway.Load() || box != c.sres.watched {
		c.sres.watched = box // a new transport's silence starts now
		c.sres.lastIn, c.sres.inAt = in, now
	} else if now.Sub(c.sres.inAt) >= silentAfter {
		c.sres.inAt = now
		c.dropTransport(CloseTimeout, "silent")
	}
}

// refreshLater makes the next ticket due ticketRefresh from now.
func (r *serverResume) refreshLater() {
	r.refreshAt.Store(time.Now().Add(ticketRefresh).UnixNano())
}

// refreshTicket sends a new ticket once one is due (housekeepLoop), unless
// the connection is away, and makes the next due.
func (c *Conn) refreshTicket(now time.Time) {
	if at := c.sres.refreshAt.Load(); at == 0 || now.UnixNano() < at || c.err() != nil {
		return
	}
	if !c.isAway.Load() {
		c.sendTicket(false)
	}
	c.sres.refreshLater()
}

// resume checks the RESUME f that opened sess (on the handshaking
// connection tmp) and hands sess to the session it names; it reports the
// refusal, if any, which tmp closes with.
func (s *Server) resume(tmp *Conn, f reliable.Frame) *CloseError {
	refuse := func(drop, reason string) *CloseError {
		s.Drop(drop)
		return &CloseError{Code: CloseRefused, Reason: reason}
	}
	if f.Version != reliable.Version {
		return &CloseError{Code: CloseVersionMismatch, Reason: fmt.Sprintf("protocol version %d not supported; server speaks %d", f.Version, reliable.Version)}
	}
	if to := s.movedTo(ID(f.ConnID)); to != "" {
		s.Drop("resume_moved")
		return &CloseError{Code: CloseMoved, Reason: to} // with a CLOSE frame: resume there
	}
	s.connsMu.Lock()
	t := s.conns[ID(f.ConnID)]
	s.connsMu.Unlock()
	if t == nil || !t.res.on() {
		return refuse("resume_unknown", reasonUnknownSession)
	}
	sess := tmp.session()
	var tag [16]byte
	if ts, ok := sess.(interface{ TokenClaims() *token.Claims }); ok {
		if cl := ts.TokenClaims(); cl.Ticket { // the KCP handshake checked it
			tag = cl.Tag
		} // else a connect token: no ticket's tag, refused as stale
	} else {
		cl, _, err := s.tickets.check(f.Payload, sess, tmp.challengeBytes(), time.Now())
		if err != nil {
			tmp.log.Info("resume ticket refused", "remote", sess.RemoteAddr(), "err", err)
			return refuse("resume_bad_ticket", reasonBadTicket)
		}
		tag = cl.Tag
	}
	t.sres.mu.Lock()
	switch {
	case t.sres.resuming:
		t.sres.mu.Unlock()
		return refuse("resume_busy", reasonBeingResumed)
	case tag != t.sres.tag || tag == [16]byte{}:
		t.sres.mu.Unlock()
		return refuse("resume_stale", reasonStaleTicket)
	}
	t.sres.tag, t.sres.resuming = [16]byte{}, true // the ticket is spent
	t.sres.mu.Unlock()
	// If the server still takes the old transport for alive, closing it
	// wakes the connection's reader, which then takes the offer. It is
	// closed first: once offered, the current transport may be the new one.
	t.dropTransport(CloseNormal, "resumed on another transport")
	select {
	case t.sres.offers <- resumeOffer{sess, f.Received}:
	default: // cannot happen: one offer at a time
		return refuse("resume_busy", reasonBeingResumed)
	}
	return nil
}

// awaitResume runs on the connection's owner goroutine once its transport
// failed: the connection is away until an offer is taken or the window
// passes.
func (c *Conn) awaitResume(cause error) (*reliable.Reader, uint32, bool) {
	s := c.srv
	if !c.isAway.Swap(true) {
		c.goAway()
		c.log.Debug("connection away", "id", c.id, "err", cause)
		c.callHooks(&s.onAway)
	}
	window := time.NewTimer(s.cfg.ResumeWindow)
	defer window.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return nil, 0, false
		case <-window.C:
			c.close(&CloseError{Code: CloseExpired, Reason: fmt.Sprintf("session expired: not resumed within %v", s.cfg.ResumeWindow)})
			return nil, 0, false
		case o := <-c.sres.offers:
			first := c.seq.nextNum()
			resumed := reliable.AppendResumed(nil, reliable.Version, first, uint16(o.sess.MaxDatagram()))
			err := c.switchTo(o.sess, resumed, o.received)
			c.sres.mu.Lock()
			c.sres.resuming = false
			c.sres.mu.Unlock()
			if err != nil {
				s.Drop("resume_not_held")
				_ = o.sess.Close(uint16(CloseRefused), reasonNotHeld)
				continue
			}
			c.isAway.Store(false)
			s.transports[c.transport].handshakes.Add("resumed", 1)
			c.sendTicket(false)
			c.callHooks(&s.onBack)
			r := reliable.NewReader(countingReader{&c.peer}, s.cfg.MaxFrame)
			r.Partial = c.partial
			c.frameBegun.Store(0) // a frame the old transport left half is not this reader's
			return r, first, true
		}
	}
}
