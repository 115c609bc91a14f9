package netcode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/reliable"
	"github.com/roomwire/roomwire/unreliable"
)

// closeGrace is how long a closing connection may spend flushing its last
// frames before the session is closed regardless.
const closeGrace = 250 * time.Millisecond

// peer is the part of a connection that client and server share: the
// session, the reliable outbox and its writer, the datagram queue and its
// sender, request correlation and the close logic.
//
// Goroutines: the owner (server's serveConn or the client's run) runs the
// reliable read loop itself; a server's may hand it on between frames
// (Conn.serveReads). The outbox's writer and the datagram sender
// run only while they have work (spawn starts them, and they end after
// linger without any), so an idle connection has neither; on a transport
// without DatagramHandler a datagram reader runs from startReceiving. All
// end once close was called and the session is gone; finish stops new ones
// and waits for them.
type peer struct {
	cur  atomic.Pointer[sessBox] // the transport session: a resume replaces it
	out  *outbox
	dq   *dgramQueue
	acks ackState

	// Reliable frames copied into datagrams (copies.go): ours, waiting for
	// acks, and the sequencer that delivers the peer's frames once, from
	// the stream or a copy. dispatch handles EVENT and REQUEST frames; the
	// owner sets it before datagrams are received.
	copies   frameCopies
	seq      frameSeq
	dispatch func(reliable.Frame)
	onCopy   func(num uint32, frame []byte)
	// inputAcked, if set, learns that the peer has every input up to n.
	inputAcked func(n uint32)
	// A peer that began a frame and went silent is closed (overdue):
	// frameBegun is when the reader found a frame begun and not whole
	// (unix nanoseconds, 0: none), frameLimit how long it may stay so (0:
	// no limit).
	frameBegun atomic.Int64
	frameLimit time.Duration

	// Unreliable events: per-name sequence numbers sent (under evMu) and
	// the newest received (reader goroutine only).
	evMu     sync.Mutex
	evSent   map[string]uint16
	evLatest map[string]uint16
	stats    connStats
	log      *slog.Logger
	maxFrame int

	ctx    context.Context
	cancel context.CancelCauseFunc

	closeOnce sync.Once
	closeErr  atomic.Pointer[CloseError]
	force     *time.Timer
	forceMu   sync.Mutex

	// wg counts the connection's goroutines (spawn); once finishing is
	// set, none starts.
	wg        sync.WaitGroup
	spawnMu   sync.Mutex
	finishing bool
	// recvInline is what startReceiving was given with recvAdmit and
	// recvHandle below.
	recvInline bool

	// pong, if set before the read loop starts, receives PONG frames.
	pong func(reliable.Frame)

	// What startReceiving was given, for each transport of the connection.
	recvAdmit  func([]byte) (unreliable.Header, []byte, bool)
	recvHandle func(unreliable.Header, []byte)
	// recvMu orders the receipt of datagrams across transports: after a
	// resume, the old transport's receiver may not have finished its last
	// one when the new transport's first comes. Never contended otherwise.
	recvMu sync.Mutex
	slow   *slowDatagrams

	// res is the session-resume state (resume.go), set up before the
	// connection's goroutines start; nil where resume is off, and off
	// (res.on false) until the server grants it.
	res *resumeState
	// detached: the session was handed to another connection (a resume);
	// this one must not close it. isAway is set while the transport is
	// gone and a resume awaited.
	detached atomic.Bool
	isAway   atomic.Bool
	// rdNum is the read loop's own (with rd below): the number of the
	// newest numbered frame read, where a loop that parked (readFrames)
	// goes on.
	rdNum uint32
	// partial is the reader hook bound sets, for each reader of a resume.
	partial func(waiting bool)
	// dropping is the transport closed on purpose to resume, if any: its
	// read error then leaves the connection away.
	dropping atomic.Pointer[sessBox]
	// away, set by the owner, waits for a resume after the transport
	// failed with err: it returns a reader on the new transport and the
	// number of the peer's first frame on it, or ok false when the
	// connection is to end (it has closed it).
	away func(err error) (r *reliable.Reader, first uint32, ok bool)
	// rd is the read loop's own Reader.
	rd *reliable.Reader
	// pingAt and pingSnaps are when the peer's latest PING was handled
	// (monotonic nanoseconds, 0: none) and how many snapshots had gone to
	// it then (handleFrame's, under the sequencer's lock): they tell an
	// idle clock's PING (idlePing).
	pingAt    int64
	pingSnaps uint64

	// hmu runs the application's event and request handlers one at a
	// time, whether the event came reliably or as a datagram.
	hmu sync.Mutex

	nextReq atomic.Uint32
	pendMu  sync.Mutex
	pending map[uint32]chan result
}

type result struct {
	payload []byte
	err     error
}

func (p *peer) init(sess transport.Session, maxFrame, outboxLimit int, copies CopyMode, log *slog.Logger) {
	p.cur.Store(&sessBox{sess})
	p.log = log
	p.maxFrame = maxFrame
	p.out = newOutbox(outboxLimit, p.write, func(n int) { p.stats.bytesSent.Add(uint64(n)) })
	p.dq = newDgramQueue(&p.stats, &p.acks, sess)
	p.copies.mode, p.copies.sess, p.copies.acks = copies, p.session, &p.acks
	p.dq.copies = &p.copies
	p.out.spawn, p.out.closeSession = p.spawn, p.closeSession
	p.dq.spawn = p.spawn
	p.out.onFrame = func(num uint32, frame []byte, copy bool) {
		p.res.keep(num, frame)
		if copy && !p.isAway.Load() && p.copies.add(num, frame) {
			p.dq.signal()
		}
	}
	p.acks.onTag = func(tag uint64) {
		if first := uint32(tag >> 32); first != 0 {
			p.copies.acked(first, uint32(tag))
		} else if p.inputAcked != nil {
			p.inputAcked(uint32(tag))
		}
	}
	p.seq.init(maxFrame, p.handleFrame)
	p.onCopy = p.copyFrame
	p.ctx, p.cancel = context.WithCancelCause(context.Background())
	p.dq.done = p.ctx.Done()
	p.seq.done = p.ctx.Done()
	p.pending = make(map[uint32]chan result)
}

// spawn runs f on a goroutine the connection owns: finish waits for it. It
// reports false, and runs nothing, once the connection is finishing.
func (p *peer) spawn(f func()) bool {
	p.spawnMu.Lock()
	defer p.spawnMu.Unlock()
	if p.finishing {
		return false
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		f()
	}()
	return true
}

// bound sets the deadlines a peer cannot stall past: a frame begun on r must
// be whole within frame, and a write must be taken within write. Call it
// before start. The server's housekeeping enforces them each second
// (overdue), with no timer per connection.
func (p *peer) bound(r *reliable.Reader, frame, write time.Duration) {
	p.frameLimit = frame
	p.partial = func(waiting bool) {
		switch {
		case !waiting:
			p.frameBegun.Store(0)
		case p.frameBegun.Load() == 0:
			p.frameBegun.Store(time.Now().UnixNano())
		}
	}
	r.Partial = p.partial
	p.out.stallAfter = write
}

// overdue closes the peer if it stalled past a deadline bound set: a frame
// begun and not whole within its limit, or a write not taken within
// stallAfter.
func (p *peer) overdue(now time.Time) {
	n := now.UnixNano()
	if t := p.frameBegun.Load(); t != 0 && p.frameLimit > 0 && time.Duration(n-t) >= p.frameLimit {
		p.close(&CloseError{Code: CloseTimeout, Reason: fmt.Sprintf("a frame was begun and not completed within %v", p.frameLimit)})
		return
	}
	if t := p.out.writeBegun.Load(); t != 0 && p.out.stallAfter > 0 && time.Duration(n-t) >= p.out.stallAfter {
		p.close(&CloseError{Code: CloseSlowConsumer, Reason: fmt.Sprintf("a write was not taken within %v: the peer does not read", p.out.stallAfter)})
	}
}

// slowQueue is how many datagrams that run application handlers (events,
// copies of reliable frames) wait for the connection's datagram goroutine
// when the transport hands datagrams over on its receive loop; beyond it
// they are dropped and counted, like any unreliable datagram. That
// goroutine runs only while there are some.
const slowQueue = 32

type slowDatagram struct {
	h    unreliable.Header
	body []byte
}

// startReceiving starts taking datagrams: admit checks and parses each
// (recording its acknowledgements), handle acts on it. It starts once the
// handshake is done, so no datagram reaches the application from an
// unauthenticated peer.
//
// On a transport that hands datagrams over on its own receive loop
// (transport.DatagramHandler: KCP), inputs, acks and snapshots are handled
// right there, with no goroutine wake-up per datagram. Events and copies of
// reliable frames run the application's handlers, which may block or wait
// for the peer, so they go to a datagram goroutine. Elsewhere a datagram
// goroutine reads and handles them all; so it does on the client (inline
// false), whose snapshot handler may wait for the server.
func (p *peer) startReceiving(inline bool, admit func([]byte) (unreliable.Header, []byte, bool), handle func(unreliable.Header, []byte)) {
	p.recvInline, p.recvAdmit, p.recvHandle = inline, admit, handle
	p.receiveOn(p.session())
}

// receiveOn takes datagrams from sess, as startReceiving says: at the start
// and again on each transport a resume moves the connection to.
func (p *peer) receiveOn(sess transport.Session) {
	admit, handle := p.recvAdmit, p.recvHandle
	dh, ok := sess.(transport.DatagramHandler)
	if !ok || !p.recvInline {
		p.spawn(func() {
			for {
				d, err := sess.ReceiveDatagram(p.ctx)
				if err != nil {
					return // closed: this connection, or this transport after a resume
				}
				p.received(len(d))
				p.recvMu.Lock()
				if h, body, ok := admit(d); ok {
					handle(h, body)
				}
				p.recvMu.Unlock()
			}
		})
		return
	}
	if p.slow == nil {
		slow := &slowDatagrams{}
		slow.handler = newWorker(func() { slow.run(p.ctx.Done(), handle) })
		p.slow = slow
	}
	slow := p.slow
	dh.HandleDatagrams(func(d []byte) {
		if p.ctx.Err() != nil {
			return
		}
		p.received(len(d))
		p.recvMu.Lock()
		h, body, ok := admit(d)
		if ok && h.Kind != unreliable.KindEvent && h.Kind != unreliable.KindReliable {
			handle(h, body)
			ok = false
		}
		p.recvMu.Unlock()
		if !ok {
			return
		}
		if !slow.push(slowDatagram{h, append([]byte(nil), body...)}, p.spawn) {
			p.stats.datagramsDropped.Add(1) // the handlers are behind
		}
	})
}

// slowDatagrams queues the datagrams whose handlers run on a goroutine of
// their own, which runs only while there are some (ending after linger
// without).
type slowDatagrams struct {
	mu      sync.Mutex
	queue   []slowDatagram
	handler worker
}

// push queues d and wakes the goroutine, or starts it with spawn; it
// reports false when the queue is full.
func (s *slowDatagrams) push(d slowDatagram, spawn func(func()) bool) bool {
	s.mu.Lock()
	if len(s.queue) == slowQueue {
		s.mu.Unlock()
		return false
	}
	s.queue = append(s.queue, d)
	if !s.handler.kick(&s.mu, true, spawn) {
		s.mu.Lock()
		s.queue = nil // the connection is finishing: no one will handle them
		s.mu.Unlock()
	}
	return true
}

// run handles the queued datagrams until done, or until linger passes
// with none.
func (s *slowDatagrams) run(done <-chan struct{}, handle func(unreliable.Header, []byte)) {
	idle := time.NewTimer(linger)
	defer idle.Stop()
	for {
		s.mu.Lock()
		if len(s.queue) > 0 {
			d := s.queue[0]
			s.queue = append(s.queue[:0], s.queue[1:]...)
			s.mu.Unlock()
			handle(d.h, d.body)
			continue
		}
		s.mu.Unlock()
		idle.Reset(linger)
		select {
		case <-s.handler.wake:
		case <-done:
			return
		case <-idle.C:
			s.mu.Lock()
			if len(s.queue) == 0 {
				s.handler.end()
				s.mu.Unlock()
				return
			}
			s.mu.Unlock()
		}
	}
}

func (p *peer) received(n int) {
	p.stats.datagramsReceived.Add(1)
	p.stats.bytesReceived.Add(uint64(n))
}

// closeSession closes the transport session with the recorded reason.
func (p *peer) closeSession() {
	if p.detached.Load() {
		return
	}
	ce := p.closeErr.Load()
	if ce == nil {
		ce = &CloseError{Code: CloseInternal, Reason: "writer stopped"}
	}
	_ = p.session().Close(uint16(ce.Code), ce.Reason)
}

// close ends the connection for reason ce, once. A local close queues a
// CLOSE frame; the writer flushes it and closes the session, or a timer does
// after closeGrace if the writer is stuck. close never blocks, so it is safe
// from a tick loop or a handler.
func (p *peer) close(ce *CloseError) {
	p.closeOnce.Do(func() {
		ce.Reason = reliable.TruncateReason(ce.Reason)
		p.closeErr.Store(ce)
		var last []byte
		switch {
		case ce.quiet:
			last = ce.last
		case !ce.Remote:
			last = reliable.AppendClose(nil, ce.Code, ce.Reason)
		}
		p.out.shut(last)
		p.dq.close()
		p.cancel(ce)
		p.forceMu.Lock()
		p.force = time.AfterFunc(closeGrace, p.closeSession)
		p.forceMu.Unlock()
		p.failPending(ce)
	})
}

// finish waits for the connection's goroutines after the read loop ended.
func (p *peer) finish() {
	p.spawnMu.Lock()
	p.finishing = true
	p.spawnMu.Unlock()
	p.wg.Wait()
	p.dq.finish()
	p.forceMu.Lock()
	if p.force != nil {
		p.force.Stop()
	}
	p.forceMu.Unlock()
	p.res.stop()
	p.closeSession()
	if p.detached.Load() {
		return
	}
	if w, ok := p.session().(interface{ Wait() }); ok {
		w.Wait() // a dialled transport session's own goroutines
	}
}

// err is the reason the connection closed, or nil while it is open.
func (p *peer) err() error {
	if ce := p.closeErr.Load(); ce != nil {
		return ce
	}
	return nil
}

func (p *peer) closedErr() error {
	if err := p.err(); err != nil {
		return err
	}
	return net.ErrClosed
}

// enqueueResult handles the outcome of an outbox append.
func (p *peer) enqueued(err error) error {
	if errors.Is(err, ErrSlowConsumer) {
		p.close(&CloseError{Code: CloseSlowConsumer, Reason: fmt.Sprintf("more than %d unsent bytes queued", p.out.limit)})
		return err
	}
	if err == nil {
		p.stats.framesSent.Add(1)
	}
	return err
}

// checkSize refuses a frame whose body would pass the frame limit.
func (p *peer) checkSize(what, name string, body int) error {
	if body > p.maxFrame {
		return fmt.Errorf("%w: %s %q of %d bytes > limit %d", reliable.ErrFrameTooLarge, what, name, body, p.maxFrame)
	}
	return nil
}

func (p *peer) emit(name string, payload []byte) error {
	if err := p.checkSize("event", name, 1+len(name)+len(payload)); err != nil {
		return err
	}
	b, ok := p.out.begin()
	if !ok {
		return p.closedErr()
	}
	b, err := reliable.AppendEvent(b, name, payload)
	if err != nil {
		p.out.abort()
		return err
	}
	return p.enqueued(p.out.end(b))
}

// sendFrames queues already encoded frames, refusing them unless every one
// is whole and within the frame limit.
func (p *peer) sendFrames(frames []byte) error {
	for rest := frames; len(rest) > 0; {
		t, n, err := reliable.ParseHeader(rest, p.maxFrame)
		if err != nil {
			return err
		}
		if len(rest) < reliable.HeaderLen+n {
			return fmt.Errorf("%w: %s frame of %d bytes cut short", reliable.ErrTruncated, t, n)
		}
		rest = rest[reliable.HeaderLen+n:]
	}
	b, ok := p.out.begin()
	if !ok {
		return p.closedErr()
	}
	return p.enqueued(p.out.end(append(b, frames...)))
}

// reply answers request id; it runs on the reader goroutine.
func (p *peer) reply(id uint32, payload []byte, herr error) error {
	if herr == nil && 4+len(payload) > p.maxFrame {
		herr = fmt.Errorf("reply of %d bytes > frame limit %d", len(payload), p.maxFrame)
	}
	b, ok := p.out.begin()
	if !ok {
		return p.closedErr()
	}
	if herr != nil {
		b = reliable.AppendReplyError(b, id, herr.Error())
	} else {
		var err error
		if b, err = reliable.AppendReply(b, id, payload); err != nil {
			p.out.abort()
			return err
		}
	}
	// Replies are written on the reader goroutine, which has nothing else to
	// do meanwhile; a peer that does not read holds up only its own
	// connection.
	if err := p.enqueued(p.out.endQuiet(b)); err != nil {
		return err
	}
	p.ackDelivered()
	_ = p.out.flush()
	return nil
}

// ackDelivered queues the ACKED owed, for the frame being delivered too,
// behind a frame that its handler just queued to flush at once (a PONG, a
// REPLY): the two go out in one write, and the ack timer's own write is
// not needed. It runs in the delivery (the sequencer's lock held, so its
// next is that frame's number).
func (p *peer) ackDelivered() {
	var b [reliable.HeaderLen + 4]byte // an ACKED frame
	if ack := p.res.ackWith(b[:0], p.seq.next+1); ack != nil {
		p.out.controlQuiet(ack)
	}
}

func (p *peer) request(ctx context.Context, name string, payload []byte, timeout time.Duration) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok && timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if err := p.checkSize("request", name, 5+len(name)+len(payload)); err != nil {
		return nil, err
	}
	id := p.nextReq.Add(1)
	ch := make(chan result, 1)
	p.pendMu.Lock()
	if err := p.err(); err != nil {
		p.pendMu.Unlock()
		return nil, err
	}
	p.pending[id] = ch
	p.pendMu.Unlock()
	defer func() {
		p.pendMu.Lock()
		delete(p.pending, id)
		p.pendMu.Unlock()
	}()

	b, ok := p.out.begin()
	if !ok {
		return nil, p.closedErr()
	}
	b, err := reliable.AppendRequest(b, id, name, payload)
	if err != nil {
		p.out.abort()
		return nil, err
	}
	// This goroutine writes the request itself when the transport says the
	// write (of all that is queued) would not wait, saving the writer
	// goroutine's wake-up; otherwise the writer goroutine writes it:
	// writing here could block past ctx on a peer that does not read.
	wr, inline := p.session().(transport.WriteReady)
	inline = inline && !p.out.writing && wr.WriteReady(len(b))
	if inline {
		err = p.out.endQuiet(b)
	} else {
		err = p.out.end(b)
	}
	if err := p.enqueued(err); err != nil {
		return nil, err
	}
	if inline {
		_ = p.out.flush() // a failure ends the connection, which fails ch
	}
	select {
	case r := <-ch:
		if r.err != nil {
			if re, ok := r.err.(*RemoteError); ok {
				re.Event = name
			}
		}
		return r.payload, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %q: %w", ErrRequestTimeout, name, ctx.Err())
	}
}

func (p *peer) failPending(ce *CloseError) {
	p.pendMu.Lock()
	for id, ch := range p.pending {
		ch <- result{err: ce}
		delete(p.pending, id)
	}
	p.pendMu.Unlock()
}

func (p *peer) resolve(f reliable.Frame) {
	p.pendMu.Lock()
	ch, ok := p.pending[f.ID]
	delete(p.pending, f.ID)
	p.pendMu.Unlock()
	if !ok {
		return // late reply to a request that timed out
	}
	if f.Type == reliable.FrameReplyError {
		ch <- result{err: &RemoteError{Message: string(f.Payload)}}
		return
	}
	ch <- result{payload: append([]byte{}, f.Payload...)}
}

// sessBox holds a transport session, whatever its type, for peer.cur.
type sessBox struct{ transport.Session }

// session is the connection's transport session now.
func (p *peer) session() transport.Session { return p.cur.Load().Session }

// write is the outbox's write: to the transport of now. When that fails
// under a connection that can resume, the frames stay in the replay log
// and the outbox waits for the new transport (errLost).
func (p *peer) write(b []byte) (int, error) {
	n, err := p.session().Write(b)
	if err != nil && p.res.on() && p.closeErr.Load() == nil {
		return n, errLost
	}
	return n, err
}

// countingReader counts the reliable bytes read.
type countingReader struct{ p *peer }

func (r countingReader) Read(b []byte) (int, error) {
	n, err := r.p.session().Read(b)
	r.p.stats.bytesReceived.Add(uint64(n))
	return n, err
}

// readLoop reads frames until the connection ends, handing each (once,
// whether or not a copy came first) to handleFrame. It returns the reason
// the connection ended, having closed it. The handshake frame was read
// already: the first frame read here is number 1.
func (p *peer) readLoop(r *reliable.Reader) *CloseError {
	p.rd, p.rdNum = r, 0
	return p.readFrames(nil)
}

// readFrames is readLoop's loop, on p.rd. With park, whenever the Reader
// holds nothing unread, it asks park whether its goroutine may end while
// the stream is idle; if so it returns nil, and whoever park arranged
// calls readFrames again once there is more to read.
func (p *peer) readFrames(park func() bool) *CloseError {
	for {
		if park != nil && p.rd.Buffered() == 0 && park() {
			return nil
		}
		f, err := p.rd.Next()
		if err != nil {
			if p.away != nil && p.resumable(err) {
				if nr, first, ok := p.away(err); ok {
					p.rd, p.rdNum = nr, first-1
					continue
				}
				return p.closeErr.Load()
			}
			ce := p.readError(err)
			p.close(ce)
			return p.closeErr.Load()
		}
		p.stats.framesReceived.Add(1)
		if f.Type == reliable.FrameAcked && p.res != nil { // not numbered
			p.res.acked(f.Received)
			p.copies.handled(f.Received)
			continue
		}
		p.rdNum++
		switch f.Type {
		case reliable.FrameEvent, reliable.FrameRequest, reliable.FrameReply, reliable.FrameReplyError,
			reliable.FramePing, reliable.FramePong:
			p.seq.fromStream(p.rdNum, f)
		case reliable.FrameClose:
			p.close(&CloseError{Code: f.Code, Reason: string(f.Payload), Remote: true})
			return p.closeErr.Load()
		default:
			p.close(&CloseError{Code: CloseProtocolError, Reason: fmt.Sprintf("unexpected %s frame", f.Type)})
			return p.closeErr.Load()
		}
	}
}

// handleFrame acts on one frame of the peer's, from the stream or a copy,
// with the sequencer's lock held: it answers the frames both sides share and
// hands events and requests to dispatch.
func (p *peer) handleFrame(f reliable.Frame) {
	p.res.handled(len(f.Name) + len(f.Payload))
	switch f.Type {
	case reliable.FrameEvent, reliable.FrameRequest:
		if p.closeErr.Load() == nil { // nothing runs for a closing connection
			p.dispatch(f)
		}
	case reliable.FrameReply, reliable.FrameReplyError:
		p.resolve(f)
	case reliable.FramePing:
		// Written here, as replies are, not handed to the writer goroutine:
		// a clock PING a second from every client would wake it each time.
		now := time.Now()
		quiet := p.idlePing(now)
		if b, ok := p.out.begin(); ok {
			p.out.noCopy = quiet
			if p.enqueued(p.out.endQuiet(reliable.AppendPong(b, f.Time, uint64(now.UnixNano())))) == nil {
				p.ackDelivered()
				_ = p.out.flush()
			}
		}
	case reliable.FramePong:
		if p.pong != nil {
			p.pong(f)
		}
	}
}

// idlePing reports whether the PING being handled is an idle clock's
// (5.17): it came at least half the idle clock's period (far above its
// active one) after the one before, and no snapshot went to the peer in
// between. Its PONG is not copied, as the client does not copy that PING:
// a connection in a lobby needs no fast clock sample, and the copy, with
// the acknowledgement it takes, costs an idle session more than the PONG.
func (p *peer) idlePing(now time.Time) bool {
	snaps := p.stats.snapshotsSent.Load()
	mono := monoAt(now)
	idle := p.pingAt != 0 && time.Duration(mono-p.pingAt) >= clockIdlePeriod/2 && snaps == p.pingSnaps
	p.pingAt, p.pingSnaps = mono, snaps
	return idle
}

// onCopies takes a RELIABLE datagram's body (datagram goroutine); it
// reports whether the body was malformed.
func (p *peer) onCopies(body []byte) (bad bool) {
	if err := unreliable.ReliableFrames(body, p.maxFrame, p.onCopy); err != nil {
		return true
	}
	if !p.copies.peer.Swap(true) { // the peer copies: it understands copies
		p.dq.signal() // judge the path now
	}
	return false
}

func (p *peer) copyFrame(num uint32, frame []byte) {
	delivered, bad := p.seq.fromCopy(num, frame)
	switch {
	case bad:
		p.stats.datagramsBad.Add(1)
	case delivered:
		p.stats.framesFromCopies.Add(1)
	}
}

// readError maps a read failure to the reason the connection ends.
func (p *peer) readError(err error) *CloseError {
	if ce := p.closeErr.Load(); ce != nil {
		return ce // we closed first; the read failed because of it
	}
	switch {
	case errors.Is(err, reliable.ErrFrameTooLarge):
		return &CloseError{Code: CloseFrameTooLarge, Reason: err.Error()}
	case errors.Is(err, reliable.ErrUnknownFrame), errors.Is(err, reliable.ErrBadFrame),
		errors.Is(err, reliable.ErrBadName), errors.Is(err, reliable.ErrTruncated):
		return &CloseError{Code: CloseProtocolError, Reason: err.Error()}
	case errors.Is(err, io.EOF):
		return &CloseError{Code: CloseNormal, Reason: "stream ended", Remote: true}
	}
	return closeErrorFrom(err)
}

// isClosed reports whether err means the session is gone for good.
func isClosed(err error) bool {
	if errors.Is(err, net.ErrClosed) || errors.Is(err, context.Canceled) {
		return true
	}
	_, ok := transport.AsCloseError(err)
	return ok
}

// parseDatagram decodes a datagram header, counting a malformed one, and
// records its sequence number and acknowledgements as received at now.
func (p *peer) parseDatagram(d []byte, now time.Time) (unreliable.Header, []byte, bool) {
	h, body, err := unreliable.ParseHeader(d)
	if err != nil || h.Seq == 0 {
		p.stats.datagramsBad.Add(1)
		return h, nil, false
	}
	p.acks.record(h, now)
	return h, body, true
}

// statsNow returns the connection's counters with the ack estimates.
func (p *peer) statsNow() Stats {
	st := p.stats.snapshot()
	var loss float64
	st.RTT, loss, st.DatagramsAcked, st.DatagramsLost = p.acks.estimates()
	st.LossPercent = 100 * loss
	return st
}

// maxEventNames bounds the per-name sequence tables of unreliable events.
const maxEventNames = 256

// emitDatagram queues an unreliable event: sequenced ones carry a
// per-name number so the receiver drops one older than the newest it saw.
func (p *peer) emitDatagram(name string, payload []byte, sequenced bool, maxDatagram int) error {
	if err := p.err(); err != nil {
		return err
	}
	if n := unreliable.HeaderLen + unreliable.EventOverhead + len(name) + len(payload); n > maxDatagram {
		return fmt.Errorf("%w: unreliable event %q of %d bytes > %d", unreliable.ErrTooLarge, name, n, maxDatagram)
	}
	var seq uint16
	p.evMu.Lock()
	if sequenced {
		if p.evSent == nil {
			p.evSent = make(map[string]uint16)
		}
		if _, ok := p.evSent[name]; !ok && len(p.evSent) >= maxEventNames {
			p.evMu.Unlock()
			return fmt.Errorf("netcode: more than %d sequenced event names", maxEventNames)
		}
		seq = p.evSent[name] + 1
		p.evSent[name] = seq
	}
	var buf [unreliable.MaxDatagram]byte
	body, err := unreliable.AppendEvent(buf[:0], sequenced, seq, name, payload)
	p.evMu.Unlock()
	if err != nil {
		return err
	}
	p.dq.putNow(unreliable.KindEvent, body, 0)
	return nil
}

// acceptEvent parses an EVENT body and applies the sequenced rule (reader
// goroutine only); ok is false for a malformed or stale event. A malformed
// one (err) is counted by the caller, as other bad datagrams are.
func (p *peer) acceptEvent(body []byte) (ev unreliable.Event, ok bool, err error) {
	ev, err = unreliable.ParseEvent(body)
	if err != nil {
		return ev, false, err
	}
	if !ev.Sequenced {
		return ev, true, nil
	}
	if p.evLatest == nil {
		p.evLatest = make(map[string]uint16)
	}
	last, seen := p.evLatest[string(ev.Name)]
	if seen && !unreliable.SeqNewer(ev.Seq, last) {
		p.stats.datagramsStale.Add(1)
		return ev, false, nil
	}
	if !seen && len(p.evLatest) >= maxEventNames {
		p.stats.datagramsBad.Add(1)
		return ev, false, nil
	}
	p.evLatest[string(ev.Name)] = ev.Seq
	return ev, true, nil
}
