package netcode

import (
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/reliable"
)

// Session resume (PROTOCOL.md 14). Both sides keep the frames they sent
// until the peer says, in an ACKED frame, that it handled them; after a
// transport dies, the client dials again and sends RESUME with the number
// of the next frame it will handle, the server answers RESUMED with its
// own, and each side replays what the other has not handled. The frames
// keep their numbers, and receivers handle each number once (frameSeq),
// so every frame is handled exactly once and in order.

// The tuning of resume (PROTOCOL.md 14).
const (
	// DefaultResumeWindow is how long an away session waits for its
	// client when Config.ResumeWindow is zero.
	DefaultResumeWindow = 10 * time.Second
	// ackEvery and ackBytes: an ACKED goes out once this many frames or
	// bytes were handled since the last, else ackDelay after the first.
	ackEvery = 16
	ackBytes = 16 << 10
	ackDelay = 250 * time.Millisecond
	// ticketLife is how long a resume ticket can be used; a new one goes
	// out every ticketRefresh.
	ticketLife    = 4 * time.Minute
	ticketRefresh = 2 * time.Minute
	// A client declares its transport dead after deadAfter without
	// receiving anything; it probes with a PING after probeAfter without
	// receiving, and keeps alive with one after keepAliveAfter without
	// sending, unless the transport keeps alive itself (liveness). The
	// server declares a resumable connection away after silentAfter
	// without receiving.
	probeAfter     = 500 * time.Millisecond
	keepAliveAfter = time.Second
	deadAfter      = 2 * time.Second
	silentAfter    = 3 * time.Second
	// The client's redial backoff: from backoffMin, doubling, to backoffMax.
	backoffMin = 100 * time.Millisecond
	backoffMax = time.Second
	// While a redial has not connected, another starts every raceEvery, up
	// to raceDials at once (dialRace).
	raceEvery = 150 * time.Millisecond
	raceDials = 4
)

// liveness is what a resumable connection on sess counts as heard beyond
// its own bytes and datagrams, and after how long without receiving (probe)
// or sending (keep) its client sends a PING. A transport that keeps alive
// itself (transport.KeptAlive) hears a working path at least every
// KeepAlive and is heard as often, so while no frame of ours waits for the
// peer's ACKED its count is enough: the client probes only once even that
// fell silent for half as long again and never keeps alive, and an idle
// connection costs no reliable frames. While frames wait (waiting), or on
// any other transport, only what netcode reads counts, and the PINGs go:
// a path that carries the peer's keep-alives but not our frames (an uplink
// gone dark) is then still found dead.
func liveness(sess transport.Session, waiting bool) (heard uint64, probe, keep time.Duration) {
	if ka, ok := sess.(transport.KeptAlive); ok && !waiting {
		return ka.Heard(), max(probeAfter, ka.KeepAlive()*3/2), time.Duration(math.MaxInt64)
	}
	return 0, probeAfter, keepAliveAfter
}

// resumeName is the reserved event a client asks for resume with, and the
// server's grant: the window and a ticket.
const resumeName = "$resume"

// The reasons a RESUME is refused with (code 6).
const (
	reasonUnknownSession = "resume refused: unknown session"
	reasonBadTicket      = "resume refused: bad resume ticket"
	reasonStaleTicket    = "resume refused: stale resume ticket"
	reasonBeingResumed   = "resume refused: session is being resumed"
	reasonNotHeld        = "resume refused: frames no longer held"
	// A HELLO on KCP whose handshake presented a resume ticket.
	reasonTicketAsToken = "a resume ticket is not a connect token"
)

// IsExpired reports whether err says the server let the session expire:
// it was away longer than its resume window, or more was queued for it
// meanwhile than the server keeps.
func IsExpired(err error) bool {
	var ce *CloseError
	return errors.As(err, &ce) && ce.Code == CloseExpired
}

// resumeState is one side's replay log and acknowledgements. A nil
// *resumeState is off: every method is a no-op.
type resumeState struct {
	p       *peer
	enabled atomic.Bool

	mu   sync.Mutex
	base uint32 // the number of the first frame kept
	// buf and ends keep their capacity for the next frames, until trim
	// lets it go: once the peer acknowledged every frame and none was kept
	// for trimAfter.
	buf    []byte // the kept frames, back to back
	ends   []int  // where each ends in buf
	limit  int
	over   bool
	logged bool     // logging started: base is set
	idle   idleMark // trim's: keep uses it

	// Acknowledging the peer's frames: handled since the last ACKED.
	ackMu    sync.Mutex
	frames   int
	bytes    int
	armed    bool
	ackTimer *time.Timer
}

func newResumeState(p *peer, limit int) *resumeState {
	r := &resumeState{p: p, limit: limit}
	r.ackTimer = time.AfterFunc(time.Hour, r.sendAck)
	r.ackTimer.Stop()
	return r
}

func (r *resumeState) on() bool { return r != nil && r.enabled.Load() }

// waiting reports whether some kept frame waits for the peer's ACKED.
func (r *resumeState) waiting() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ends) > 0
}

// start begins keeping frames from number first on (under the outbox's
// lock, so that no frame slips between). Resume is on only once enabled:
// the server's grant, on both sides.
func (r *resumeState) start(first uint32) {
	r.mu.Lock()
	if !r.logged {
		r.base, r.logged = first, true
	}
	r.mu.Unlock()
}

// keep logs frame num (under the outbox's lock). Past the limit the
// connection closes: a peer that never acknowledges holds no more.
func (r *resumeState) keep(num uint32, frame []byte) {
	if r == nil {
		return
	}
	r.mu.Lock()
	if !r.logged || num != r.base+uint32(len(r.ends)) {
		r.mu.Unlock()
		return
	}
	if len(r.buf)+len(frame) > r.limit && !r.enabled.Load() {
		// Not granted (a server without resume never acknowledges): stop
		// keeping frames rather than close.
		r.logged, r.buf, r.ends = false, nil, nil
		r.mu.Unlock()
		return
	}
	if len(r.buf)+len(frame) > r.limit {
		first := !r.over
		r.over = true
		r.mu.Unlock()
		if first { // not under the outbox's lock: close takes it
			time.AfterFunc(0, func() { r.p.close(r.p.queuedTooMuch(r.limit)) })
		}
		return
	}
	r.buf = append(r.buf, frame...)
	r.ends = append(r.ends, len(r.buf))
	r.idle.used = true
	r.mu.Unlock()
}

// trim lets the kept frames' buffers go once the peer acknowledged every
// frame and none was kept for trimAfter (housekeeping, peer.trim): nothing
// is left to replay, and keep allocates them again.
func (r *resumeState) trim(now time.Time) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if (r.buf == nil && r.ends == nil) || len(r.ends) > 0 || !r.idle.idle(now, trimAfter) {
		return
	}
	r.buf, r.ends = nil, nil
}

// acked forgets the frames numbered before received.
func (r *resumeState) acked(received uint32) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := received - r.base
	if n >= 1<<31 || n == 0 {
		return
	}
	if int(n) > len(r.ends) {
		n = uint32(len(r.ends)) // acknowledges what we never sent: forget all
		if n == 0 {
			return
		}
	}
	cut := r.ends[n-1]
	rest := copy(r.buf, r.buf[cut:])
	r.buf = r.buf[:rest]
	k := copy(r.ends, r.ends[n:])
	r.ends = r.ends[:k]
	for i := range r.ends {
		r.ends[i] -= cut
	}
	r.base += n
	if cap(r.buf) > 64<<10 && len(r.buf) < cap(r.buf)/4 { // let a burst's memory go
		r.buf = append([]byte(nil), r.buf...)
	}
}

// from returns a copy of the kept frames from number first on, or ok false
// when some of them are no longer (or were never) kept.
func (r *resumeState) from(first uint32) (frames []byte, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	skip := first - r.base
	if !r.logged || skip >= 1<<31 || skip > uint32(len(r.ends)) {
		return nil, false
	}
	at := 0
	if skip > 0 {
		at = r.ends[skip-1]
	}
	return append([]byte(nil), r.buf[at:]...), true
}

// handled counts a frame of the peer's that was handled, and sends an
// ACKED now or soon.
func (r *resumeState) handled(size int) {
	if !r.on() {
		return
	}
	r.ackMu.Lock()
	r.frames++
	r.bytes += size
	switch {
	case r.frames >= ackEvery || r.bytes >= ackBytes:
		r.armed = true
		r.ackTimer.Reset(0) // not here: the sequencer's lock is held
	case !r.armed:
		r.armed = true
		r.ackTimer.Reset(ackDelay)
	}
	r.ackMu.Unlock()
}

// ackWith takes the ACKED owed for every frame numbered before next, for a
// caller that writes a frame anyway (a PONG, on the goroutine that handles
// the PING): the ack timer's is then not needed. It returns nil when none
// is owed. An idle client's PING a second would otherwise wake the
// connection's writer goroutine for its ACKED each time, and it would
// never end. The frame is appended to dst, so that a caller's stack
// buffer spares the PING handled a second its allocation.
func (r *resumeState) ackWith(dst []byte, next uint32) []byte {
	if !r.on() {
		return nil
	}
	r.ackMu.Lock()
	defer r.ackMu.Unlock()
	if !r.armed {
		return nil
	}
	r.frames, r.bytes, r.armed = 0, 0, false
	r.ackTimer.Stop() // had it fired, its ACKED is a harmless repeat
	return reliable.AppendAcked(dst, next)
}

// sendAck sends an ACKED for what was handled (the ack timer).
func (r *resumeState) sendAck() {
	r.ackMu.Lock()
	r.frames, r.bytes, r.armed = 0, 0, false
	r.ackMu.Unlock()
	var b [reliable.HeaderLen + 4]byte // an ACKED frame
	r.p.out.control(reliable.AppendAcked(b[:0], r.p.seq.nextNum()))
}

// stop ends resume for a connection that ended, and lets the kept frames
// go, though the application may hold on to the connection.
func (r *resumeState) stop() {
	if r == nil {
		return
	}
	r.ackTimer.Stop()
	r.mu.Lock()
	r.buf, r.ends, r.logged = nil, nil, false
	r.mu.Unlock()
}

// queuedTooMuch is the reason a connection closes whose replay log is full:
// it expires if it is away, and is a slow consumer otherwise.
func (p *peer) queuedTooMuch(limit int) *CloseError {
	if p.isAway.Load() {
		return &CloseError{Code: CloseExpired, Reason: fmt.Sprintf("session expired: more than %d bytes queued while away", limit)}
	}
	return &CloseError{Code: CloseSlowConsumer, Reason: fmt.Sprintf("more than %d reliable bytes not acknowledged", limit)}
}

// resumable reports whether a read that failed with err leaves the session
// away rather than ended: resume was agreed, the connection is not
// closing, and the peer did not close the stream on purpose.
func (p *peer) resumable(err error) bool {
	if !p.res.on() || p.closeErr.Load() != nil {
		return false
	}
	if box := p.cur.Load(); p.dropping.CompareAndSwap(box, nil) {
		return true // we closed this transport ourselves, to resume
	}
	if errors.Is(err, io.EOF) {
		return false // the peer ended the stream on purpose
	}
	ce, closed := transport.AsCloseError(err)
	switch {
	case !closed:
		return true
	case ce.Code == uint16(CloseMoved):
		return true // handed off: resume where $moved said
	case ce.Code == uint16(CloseTimeout):
		// A dead path, found by this side's transport, or by a client that
		// dropped it and whose close arrives once the path is back (a held
		// TCP stream).
		return true
	case ce.Remote:
		return false // the peer closed its transport on purpose
	default:
		// This side's transport: a broken path (a reset, a lost
		// connection) leaves the session away; a peer that broke the
		// transport's rules ends it.
		return ce.Code == uint16(CloseInternal)
	}
}

// goAway stops sending on a transport that failed: the session is away
// until a resume, and only the replay log keeps what is sent meanwhile.
func (p *peer) goAway() {
	p.out.loseTransport()
	p.copies.drop()
}

// dropTransport closes the transport, not the connection: the reader then
// waits for a resume.
func (p *peer) dropTransport(code CloseCode, reason string) {
	box := p.cur.Load()
	p.dropping.Store(box)
	_ = box.Close(uint16(code), reason)
}

// switchTo moves the connection to sess, a resumed transport, whose peer
// handles our frames from peerNext on: first (RESUMED, on the server) and
// the replay go out ahead of anything new. The old transport is closed.
func (p *peer) switchTo(sess transport.Session, first []byte, peerNext uint32) error {
	if _, ok := p.res.from(peerNext); !ok {
		return errors.New(reasonNotHeld)
	}
	old := p.session()
	_ = old.Close(uint16(CloseNormal), "resumed on another transport")
	p.out.reattach(first, func() []byte {
		replay, _ := p.res.from(peerNext) // held still: only the peer's ACKED trims the log
		return replay
	}, func() {
		p.cur.Store(&sessBox{sess})
	})
	p.dq.attach(sess)
	p.receiveOn(sess)
	if w, ok := old.(interface{ Wait() }); ok {
		w.Wait()
	}
	return nil
}
