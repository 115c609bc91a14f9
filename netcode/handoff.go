package netcode

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/roomwire/roomwire/netcode/token"
	"github.com/roomwire/roomwire/reliable"
)

// Handoff moves a live session to another server, as a cluster does with
// the rooms of a draining node (PROTOCOL.md 14.9). It rides on resume: the
// old server freezes the connection and exports what resume keeps (the
// frame numbers both ways, the frames the client has not acknowledged, the
// ticket), the new server adopts it as a session that is away, and the
// client, told where it went, resumes there with the ticket it has. Each
// side replays what the other has not handled, so reliable frames are
// neither lost nor handled twice across the move.

// movedName is the reserved event that tells a client where its session
// went: the URLs to resume at, as Dial takes them.
const movedName = "$moved"

// ErrNotResumable refuses a handoff of a connection without resume: it was
// not granted (the client did not ask, or resume is off), so the client
// could not resume elsewhere.
var ErrNotResumable = errors.New("netcode: connection cannot be handed off: resume not granted")

// ErrBadHandoff refuses a handoff state that does not parse (Adopt).
var ErrBadHandoff = errors.New("netcode: malformed handoff state")

// handoffMagic starts a handoff state, naming its format.
const handoffMagic = "RWH1"

// Handoff is a connection frozen for a move to another server: its client's
// frames are held back and nothing new is sent to it, until Commit sends the
// client on or Abort lets the connection go on here. One of them must be
// called.
type Handoff struct {
	c     *Conn
	urls  string
	moved []byte // the $moved frame: the last on this server, the first the state numbers past
	state []byte
	once  sync.Once
}

// StartHandoff freezes c and exports its session for another server's
// Adopt; urls are where the client is to resume (comma-separated, as Dial
// takes them, at most 256 bytes). It fails with ErrNotResumable when resume
// was not granted, and when c is closed or being resumed.
func (c *Conn) StartHandoff(urls string) (*Handoff, error) {
	if len(urls) == 0 || len(urls) > reliable.MaxCloseReason {
		return nil, fmt.Errorf("netcode: handoff URLs of %d bytes not 1..%d", len(urls), reliable.MaxCloseReason)
	}
	if c.sres == nil || !c.res.on() {
		return nil, ErrNotResumable
	}
	moved, err := reliable.AppendEvent(nil, movedName, []byte(urls))
	if err != nil {
		return nil, err
	}
	in := c.seq.freeze()
	next, ok := c.out.seal()
	if !ok {
		c.seq.thaw(false)
		return nil, c.closedErr()
	}
	c.sres.mu.Lock()
	tag, resuming := c.sres.tag, c.sres.resuming
	c.sres.mu.Unlock()
	base, log, ok := c.res.export(next)
	if resuming || !ok {
		c.out.unseal()
		c.seq.thaw(false)
		if resuming {
			return nil, errors.New("netcode: connection is being resumed")
		}
		return nil, errors.New("netcode: connection's replay log is incomplete")
	}
	b := append(make([]byte, 0, 128+len(log)+len(moved)), handoffMagic...)
	b = append(b, c.id[:]...)
	b = append(b, byte(c.transport))
	b = binary.BigEndian.AppendUint32(b, in)
	b = binary.BigEndian.AppendUint32(b, next+1) // past $moved
	b = binary.BigEndian.AppendUint32(b, base)
	b = binary.BigEndian.AppendUint64(b, c.lastInput.Load())
	b = append(b, tag[:]...)
	b = appendString16(b, c.identity.User)
	if t := c.identity.Token; t != nil {
		b = append(b, 1)
		b = binary.BigEndian.AppendUint64(b, t.ProtocolID)
		b = binary.BigEndian.AppendUint64(b, t.ClientID)
		b = binary.BigEndian.AppendUint64(b, uint64(t.Expires.UnixNano()))
		b = binary.BigEndian.AppendUint64(b, uint64(t.Timeout))
		b = appendString16(b, string(t.UserData))
	} else {
		b = append(b, 0)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(log)+len(moved)))
	b = append(append(b, log...), moved...)
	return &Handoff{c: c, urls: urls, moved: moved, state: b}, nil
}

func appendString16(b []byte, s string) []byte {
	return append(binary.BigEndian.AppendUint16(b, uint16(len(s))), s...)
}

// State is the exported session, for the new server's Adopt.
func (h *Handoff) State() []byte { return h.state }

// Conn is the connection being handed off.
func (h *Handoff) Conn() *Conn { return h.c }

// Commit sends the client on, once the new server adopted the state: the
// frames queued before the freeze go out, then a $moved event with the
// URLs, and the connection ends here with CloseMoved (no CLOSE frame: the
// session goes on). The client's frames held back are dropped; it replays
// them to the new server. A client that resumes here instead is refused
// with CloseMoved and the URLs for a while.
func (h *Handoff) Commit() {
	h.once.Do(func() {
		c := h.c
		c.srv.noteMoved(c.id, h.urls)
		c.seq.thaw(true)
		// $moved goes last, queued by close once the reason is recorded:
		// the writer closes the transport with it as soon as it is out.
		c.close(&CloseError{Code: CloseMoved, Reason: "moved to " + h.urls, quiet: true, last: h.moved})
	})
}

// Abort lets the connection go on here, as if never frozen: the client's
// frames held back are handled. Frames refused meanwhile (Emit failed) stay
// unsent.
func (h *Handoff) Abort() {
	h.once.Do(func() {
		h.c.out.unseal()
		h.c.seq.thaw(false)
	})
}

// export copies the replay log, which must hold every frame from base up to
// next (under the sealed outbox, so none is added meanwhile).
func (r *resumeState) export(next uint32) (base uint32, log []byte, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.logged || r.over || r.base+uint32(len(r.ends)) != next {
		return 0, nil, false
	}
	return r.base, append([]byte(nil), r.buf...), true
}

// adopt makes log, frames numbered from base on, the replay log, and turns
// resume on.
func (r *resumeState) adopt(base uint32, log []byte, ends []int) {
	r.mu.Lock()
	r.base, r.buf, r.ends, r.logged = base, log, ends, true
	r.mu.Unlock()
	r.enabled.Store(true)
}

// handoffState is a parsed handoff state.
type handoffState struct {
	id            ID
	kind          transportKind
	in, out, base uint32
	lastInput     uint64
	tag           [16]byte
	identity      Identity
	log           []byte
	ends          []int
}

// parseHandoff parses and checks a handoff state: every length against
// what is left, the log's frames against maxFrame and its size against
// maxQueued, and the frame numbers against each other.
func parseHandoff(b []byte, maxFrame, maxQueued int) (*handoffState, error) {
	var st handoffState
	rd := reader{b: b}
	if string(rd.take(len(handoffMagic))) != handoffMagic {
		return nil, fmt.Errorf("%w: not a handoff state of this version", ErrBadHandoff)
	}
	copy(st.id[:], rd.take(16))
	st.kind = transportKind(rd.u8())
	st.in, st.out, st.base = rd.u32(), rd.u32(), rd.u32()
	st.lastInput = rd.u64()
	copy(st.tag[:], rd.take(16))
	st.identity.User = string(rd.take(int(rd.u16())))
	if rd.u8() == 1 {
		t := &token.Claims{ProtocolID: rd.u64(), ClientID: rd.u64()}
		t.Expires = time.Unix(0, int64(rd.u64()))
		t.Timeout = time.Duration(rd.u64())
		t.UserData = append([]byte(nil), rd.take(int(rd.u16()))...)
		st.identity.Token = t
	}
	n := rd.u32()
	if rd.err == nil && uint64(n) > uint64(maxQueued)+uint64(maxFrame) {
		return nil, fmt.Errorf("%w: replay log of %d bytes > %d", ErrBadHandoff, n, maxQueued)
	}
	log := rd.take(int(n))
	if rd.err != nil || len(rd.b) != 0 || st.kind >= numTransports {
		return nil, ErrBadHandoff
	}
	for rest := log; len(rest) > 0; {
		t, size, err := reliable.ParseHeader(rest, maxFrame)
		if err != nil || len(rest) < reliable.HeaderLen+size {
			return nil, fmt.Errorf("%w: replay log: %s frame: %v", ErrBadHandoff, t, err)
		}
		rest = rest[reliable.HeaderLen+size:]
		st.ends = append(st.ends, len(log)-len(rest))
	}
	if st.base+uint32(len(st.ends)) != st.out || st.base == 0 {
		return nil, fmt.Errorf("%w: %d frames from %d do not end at %d", ErrBadHandoff, len(st.ends), st.base, st.out)
	}
	st.log = append([]byte(nil), log...)
	return &st, nil
}

// reader takes big-endian fields off b; past its end it records an error
// and returns zeros.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil || n > len(r.b) {
		r.err = ErrBadHandoff
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

func (r *reader) u8() uint8 {
	if p := r.take(1); p != nil {
		return p[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if p := r.take(2); p != nil {
		return binary.BigEndian.Uint16(p)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if p := r.take(4); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if p := r.take(8); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

// ErrIDTaken refuses to adopt a session whose id a connection of this
// server has already.
var ErrIDTaken = errors.New("netcode: a connection with this id exists")

// Adopt takes over a session another server exported (Handoff.State). The
// connection is away until its client resumes here, within the resume
// window; meanwhile what is sent to it is kept for the replay. Connect
// hooks run for it as for a new connection, then the away hooks. Adopt
// fails for a state that does not parse, an id in use, and when resume is
// off.
func (s *Server) Adopt(state []byte) (*Conn, error) {
	if s.cfg.ResumeWindow < 0 {
		return nil, errors.New("netcode: cannot adopt a session: resume is off")
	}
	st, err := parseHandoff(state, s.cfg.MaxFrame, s.cfg.MaxQueued)
	if err != nil {
		return nil, err
	}
	stub := &awaySession{done: make(chan struct{})}
	close(stub.done)
	c := &Conn{srv: s, id: st.id, budget: s.newBudget(), transport: st.kind, identity: st.identity}
	c.init(stub, s.cfg.MaxFrame, s.cfg.MaxQueued, s.cfg.ReliableCopies, s.cfg.Logger)
	c.prepareResume()
	c.dispatch = c.dispatchFrame
	c.dq.snaps = &snapshotSender{codec: s.codec}
	c.lastInput.Store(st.lastInput)
	c.seq.next = st.in
	c.out.frames = st.out
	c.res.adopt(st.base, st.log, st.ends)
	c.sres.tag = st.tag
	c.isAway.Store(true)
	c.goAway()       // sent from now on: kept for the replay only
	c.dq.drop(false) // no datagrams until a transport attaches
	// Datagrams are received as startReceiving sets up, from the transport
	// a resume attaches on.
	c.recvInline, c.recvAdmit, c.recvHandle = true, c.onDatagram, c.handleDatagram
	r := reliable.NewReader(countingReader{&c.peer}, s.cfg.MaxFrame)
	c.bound(r, s.cfg.FrameTimeout, s.cfg.WriteTimeout)
	r.Partial = c.partial

	s.connsMu.Lock()
	if s.conns[c.id] != nil || s.closing.Load() {
		s.connsMu.Unlock()
		c.cancel(nil) // nothing of c started
		if s.closing.Load() {
			return nil, errors.New("netcode: server shutting down")
		}
		return nil, ErrIDTaken
	}
	s.conns[c.id] = c
	s.wg.Add(1) // under connsMu, checked against closing: Close waits for it
	s.connsMu.Unlock()
	s.metrics.connsActive.Add(1)
	s.transports[c.transport].handshakes.Add("adopted", 1)
	c.sres.refreshLater()
	s.housekeep()
	go s.serveAdopted(c, r)
	return c, nil
}

// serveAdopted is an adopted connection's owner goroutine: its stub
// transport fails at the first read, so the connection waits for its
// client's resume, and then reads as any other.
func (s *Server) serveAdopted(c *Conn, r *reliable.Reader) {
	defer s.wg.Done()
	c.callHooks(&s.onConnect)
	c.callHooks(&s.onAway)         // away from the start: awaitResume does not call them again
	c.dropping.Store(c.cur.Load()) // the stub's failure is ours: resumable
	ce := c.readLoop(r)
	s.connEnded(c, ce)
}

// noteMoved remembers, for a while, where a handed-off session went, so
// that a client that resumes here (its $moved lost with its transport) is
// sent on. Only handoffs fill it.
func (s *Server) noteMoved(id ID, urls string) {
	now := time.Now()
	s.movedMu.Lock()
	defer s.movedMu.Unlock()
	if s.moved == nil {
		s.moved = make(map[ID]movedTo)
	}
	for k, m := range s.moved {
		if now.After(m.until) {
			delete(s.moved, k)
		}
	}
	s.moved[id] = movedTo{urls: urls, until: now.Add(s.cfg.ResumeWindow + time.Minute)}
}

// movedTo returns the URLs a session with id was handed off to, or "".
func (s *Server) movedTo(id ID) string {
	s.movedMu.Lock()
	defer s.movedMu.Unlock()
	if m, ok := s.moved[id]; ok && time.Now().Before(m.until) {
		return m.urls
	}
	return ""
}

type movedTo struct {
	urls  string
	until time.Time
}

// awaySession stands in for the transport of an adopted session until its
// client resumes: every operation fails as on a closed transport.
type awaySession struct{ done chan struct{} }

func (*awaySession) Read([]byte) (int, error)                        { return 0, net.ErrClosed }
func (*awaySession) Write([]byte) (int, error)                       { return 0, net.ErrClosed }
func (*awaySession) SendDatagram([]byte) error                       { return net.ErrClosed }
func (*awaySession) MaxDatagram() int                                { return 1200 }
func (*awaySession) Close(uint16, string) error                      { return nil }
func (s *awaySession) Done() <-chan struct{}                         { return s.done }
func (*awaySession) RemoteAddr() net.Addr                            { return awayAddr{} }
func (*awaySession) ReceiveDatagram(context.Context) ([]byte, error) { return nil, net.ErrClosed }

// awayAddr is an adopted session's address before its client resumes.
type awayAddr struct{}

func (awayAddr) Network() string { return "away" }
func (awayAddr) String() string  { return "away" }
