package netcode

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/reliable"
	"github.com/roomwire/roomwire/unreliable"
)

// Reliable frames copied into datagrams.
//
// Events are sparse, so a lost stream segment has no later segments behind
// it to trigger a fast retransmit: it waits for the transport's
// retransmission timeout, several round trips under loss. So each side also
// copies its small reliable frames into RELIABLE datagrams, numbered by
// their place on the stream, and sends the copies again with the steady
// datagram traffic until the peer acknowledges a datagram that carried
// them (yojimbo's reliable-ordered channel and Quake 3's reliable commands
// do the same). The receiver delivers every frame once and in stream order,
// from whichever arrives first. The stream stays the source of truth: it
// carries every frame, and a frame that was never copied, or whose copies
// were all lost, simply arrives by the stream.

// CopyMode says when a connection copies its reliable frames into datagrams.
type CopyMode uint8

const (
	// CopiesAuto copies while the path is slow or lossy: the transport's
	// round-trip time is at least 10 ms, or at least 1 % of datagrams go
	// unacknowledged. On a fast, clean path (a LAN, loopback) the
	// transport's own retransmission is as quick, and copies would only
	// cost CPU and bandwidth.
	CopiesAuto CopyMode = iota
	// CopiesAlways copies whatever the path.
	CopiesAlways
	// CopiesOff never copies.
	CopiesOff
)

const (
	// maxCopies and maxCopyBytes bound the frames a connection holds for
	// copying; frames beyond travel by the stream only.
	maxCopies    = 32
	maxCopyBytes = 16 << 10
	// maxCopyFrame is the largest frame, header included, that is copied:
	// one frame in the smallest datagram limit of the shipped transports
	// (KCP's 1175 bytes).
	maxCopyFrame = 1175 - unreliable.HeaderLen - unreliable.ReliableHeaderLen
	// copyResend is the least time between two rounds of copies; copies
	// ride the datagram traffic that flows anyway, and a timer sends them
	// when none does.
	copyResend = 30 * time.Millisecond
	// copyMaxAge is how long a frame is copied before it is left to the
	// stream.
	copyMaxAge = time.Second
	// copyDatagrams bounds the datagrams of copies sent per round.
	copyDatagrams = 2
	// copyMinRTT and copyMinLoss are CopiesAuto's thresholds.
	copyMinRTT  = 10 * time.Millisecond
	copyMinLoss = 0.01
	// copyLossMemory is how long a loss counts towards copyMinLoss: at 1 %
	// loss and 30 datagrams a second, some loss falls in it 95 % of the
	// time, while an idle connection forgets a burst of losses after its
	// connect rather than copying on for minutes.
	copyLossMemory = 10 * time.Second
	// maxHeld bounds the copies a receiver holds that arrived ahead of a
	// frame it is still waiting for.
	maxHeld = 32
)

func (m CopyMode) String() string {
	switch m {
	case CopiesAuto:
		return "auto"
	case CopiesAlways:
		return "always"
	case CopiesOff:
		return "off"
	}
	return fmt.Sprintf("CopyMode(%d)", uint8(m))
}

// Set parses "auto", "always" or "off", so that a CopyMode is a flag.Value.
func (m *CopyMode) Set(s string) error {
	for _, v := range []CopyMode{CopiesAuto, CopiesAlways, CopiesOff} {
		if s == v.String() {
			*m = v
			return nil
		}
	}
	return fmt.Errorf("netcode: copy mode %q: want auto, always or off", s)
}

// copyable reports whether a frame of type t may travel as a copy. HELLO,
// WELCOME and CLOSE never do: they start and end the stream.
func copyable(t reliable.FrameType) bool {
	switch t {
	case reliable.FrameEvent, reliable.FrameRequest, reliable.FrameReply, reliable.FrameReplyError,
		reliable.FramePing, reliable.FramePong:
		return true
	}
	return false
}

type copyEntry struct {
	num   uint32
	frame []byte
	first time.Time // first sent; zero until then
	done  bool
}

// frameCopies is the sending side: the frames waiting for a datagram ack.
// The outbox adds (under its own lock); the datagram sender builds
// datagrams and the ack reader removes.
type frameCopies struct {
	mode CopyMode
	// fresh: an entry was added since the last round (under mu).
	fresh bool
	// on says whether frames are recorded now: the mode, the path and, on
	// the server, whether the client sends copies itself. The datagram
	// sender updates it every round.
	on atomic.Bool
	// peer is set once the peer sent a valid RELIABLE datagram: it
	// understands them. The client starts with it set.
	peer atomic.Bool
	// sess and acks are what the path is judged by; skipped counts the
	// frames not recorded since the path was last judged.
	skipped atomic.Uint32
	sess    func() transport.Session
	acks    *ackState
	judged  atomic.Int64 // when the path was last judged, Unix nanoseconds

	mu sync.Mutex
	// ring is made at the first frame copied (most connections copy none),
	// and let go with its frames' buffers once none was copied for a while
	// (trim).
	ring     *[maxCopies]copyEntry
	head, n  int
	bytes    int
	lastSent int64    // when copies last went out, Unix nanoseconds
	idle     idleMark // trim's: add uses it
}

// rejudgeEvery is how many frames may go uncopied, and rejudgeAfter how
// long, before the path is judged again outside the datagram sender's
// rounds: a connection with no datagram traffic has no rounds, nor has one
// whose datagrams all go straight from the tick.
const (
	rejudgeEvery = 32
	rejudgeAfter = 250 * time.Millisecond
)

// add records frame number num for copying; it reports whether it did.
func (c *frameCopies) add(num uint32, frame []byte) bool {
	if len(frame) > maxCopyFrame || !copyable(reliable.FrameType(frame[0])) {
		return false
	}
	if !c.on.Load() {
		if c.mode == CopiesOff || !c.peer.Load() {
			return false
		}
		stale := time.Since(time.Unix(0, c.judged.Load())) >= rejudgeAfter
		if c.skipped.Add(1)%rejudgeEvery != 0 && !stale {
			return false
		}
		if !c.judge() {
			return false
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == maxCopies || c.bytes+len(frame) > maxCopyBytes {
		return false
	}
	if c.ring == nil {
		c.ring = new([maxCopies]copyEntry)
	}
	e := &c.ring[(c.head+c.n)%maxCopies]
	e.num, e.frame, e.first, e.done = num, append(e.frame[:0], frame...), time.Time{}, false
	c.n++
	c.bytes += len(frame)
	c.fresh, c.idle.used = true, true
	return true
}

// trim lets the ring and its frames' buffers go once it holds none and
// none was added for trimAfter (housekeeping, peer.trim); add makes it
// again.
func (c *frameCopies) trim(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ring == nil || c.n > 0 || !c.idle.idle(now, trimAfter) {
		return
	}
	c.ring, c.head, c.bytes = nil, 0, 0
}

// judge decides whether frames are copied from now on: the mode, the peer
// and the path say.
func (c *frameCopies) judge() bool {
	on := c.peer.Load()
	switch c.mode {
	case CopiesOff:
		on = false
	case CopiesAuto:
		on = on && pathNeedsCopies(c.sess(), c.acks)
	}
	c.on.Store(on)
	c.judged.Store(time.Now().UnixNano())
	return on
}

// update judges the path again; when frames are not to be copied, it
// forgets those it holds. It reports whether anything is held.
func (c *frameCopies) update() bool {
	on := c.judge()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !on {
		for i := 0; i < c.n; i++ {
			c.ring[(c.head+i)%maxCopies].done = true
		}
		c.head, c.n, c.bytes = 0, 0, 0
	}
	return c.n > 0
}

func pathNeedsCopies(sess transport.Session, acks *ackState) bool {
	if pr, ok := sess.(transport.PathRTT); ok && pr.RTT() >= copyMinRTT {
		return true
	}
	if acks == nil {
		return false
	}
	acks.mu.Lock()
	loss, at := acks.sent.Loss(), acks.sent.LastLoss()
	acks.mu.Unlock()
	return loss >= copyMinLoss && time.Since(at) < copyLossMemory
}

// build appends the round's datagrams of copies to bufs[i][:0], at most
// copyDatagrams, each one run of consecutive frame numbers, oldest first;
// it returns how many and each one's ack tag. Nothing is built before
// copyResend has passed since the last round, unless a frame is new.
func (c *frameCopies) build(now time.Time, maxDatagram int, bufs *[copyDatagrams][]byte, tags *[copyDatagrams]uint64) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	// A clock set back counts as time passed, so that copies go on.
	if d := now.UnixNano() - c.lastSent; c.n == 0 || (!c.fresh && d >= 0 && d < int64(copyResend)) {
		return 0
	}
	c.fresh, c.lastSent = false, now.UnixNano()
	for i := 0; i < c.n; i++ {
		if e := &c.ring[(c.head+i)%maxCopies]; !e.done && !e.first.IsZero() && now.Sub(e.first) > copyMaxAge {
			c.finish(e)
		}
	}
	c.pop()
	built := 0
	for i := 0; i < c.n && built < copyDatagrams; {
		e := &c.ring[(c.head+i)%maxCopies]
		if e.done {
			i++
			continue
		}
		d := unreliable.AppendHeader(bufs[built][:0], unreliable.Header{Kind: unreliable.KindReliable})
		d = unreliable.AppendReliableHeader(d, e.num, 0)
		countAt := len(d) - 1
		first, last, count := e.num, e.num, 0
		for ; i < c.n && count < 255; i++ {
			e = &c.ring[(c.head+i)%maxCopies]
			if e.done || (count > 0 && e.num != last+1) || len(d)+len(e.frame) > maxDatagram {
				break
			}
			d = append(d, e.frame...)
			if e.first.IsZero() {
				e.first = now
			}
			last = e.num
			count++
		}
		if count == 0 { // a frame too large for this datagram limit
			c.finish(e)
			i++
			continue
		}
		d[countAt] = byte(count)
		bufs[built], tags[built] = d, uint64(first)<<32|uint64(last)
		built++
	}
	return built
}

// acked removes frames first..last: the peer acknowledged a datagram that
// carried them.
func (c *frameCopies) acked(first, last uint32) {
	c.finishIf(func(num uint32) bool { return num-first <= last-first })
}

// handled removes the frames before number next: the peer's ACKED says it
// handled them, from the stream or a copy, so no copy of them is needed
// any more, though no datagram that carried one was acknowledged.
func (c *frameCopies) handled(next uint32) {
	c.finishIf(func(num uint32) bool { return int32(num-next) < 0 })
}

// finishIf removes the held frames whose numbers done reports.
func (c *frameCopies) finishIf(done func(num uint32) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := 0; i < c.n; i++ {
		if e := &c.ring[(c.head+i)%maxCopies]; !e.done && done(e.num) {
			c.finish(e)
		}
	}
	c.pop()
}

func (c *frameCopies) finish(e *copyEntry) {
	e.done = true
	c.bytes -= len(e.frame)
}

// drop forgets every frame held for copying, and the ring they were in:
// the transport they were copied on is gone, and the replay of a resume
// sends them again.
func (c *frameCopies) drop() {
	c.mu.Lock()
	c.ring, c.head, c.n, c.bytes = nil, 0, 0, 0
	c.mu.Unlock()
}

// pop drops finished entries from the head of the ring.
func (c *frameCopies) pop() {
	for c.n > 0 && c.ring[c.head].done {
		c.head = (c.head + 1) % maxCopies
		c.n--
	}
}

// frameSeq is the receiving side: it numbers the frames of both paths and
// hands each to deliver once, in stream order. The stream's reader and the
// datagram reader both call it; deliver runs with its lock held, so the
// handlers of frames never run concurrently or out of order.
type frameSeq struct {
	mu       sync.Mutex
	next     uint32 // the number of the next frame to deliver
	maxFrame int
	deliver  func(reliable.Frame)
	held     *[maxHeld]heldCopy // made at the first copy held ahead, let go by trim
	heldIdle idleMark           // used: a copy was held ahead
	// gate, while not nil, holds stream frames back (a handoff: freeze);
	// it is closed when they may go on (thaw) or are to be dropped for
	// good (moved: another server handles them).
	gate  chan struct{}
	moved bool
	done  <-chan struct{} // the connection's end: a held frame waits no longer
}

type heldCopy struct {
	num   uint32
	valid bool
	frame []byte
}

func (s *frameSeq) init(maxFrame int, deliver func(reliable.Frame)) {
	s.next, s.maxFrame, s.deliver = 1, maxFrame, deliver
}

// nextNum is the number of the next frame to deliver: every frame before
// it was handled.
func (s *frameSeq) nextNum() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next
}

// fromStream delivers stream frame num unless its copy was delivered
// already; it reports whether it did.
func (s *frameSeq) fromStream(num uint32, f reliable.Frame) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.gate != nil { // frozen: wait (the reader goroutine only)
		g := s.gate
		s.mu.Unlock()
		select {
		case <-g:
		case <-s.done:
		}
		s.mu.Lock()
		if s.gate == g {
			return false // the connection ended while frozen
		}
	}
	if s.moved || num-s.next >= 1<<31 { // before next: a copy came first
		return false
	}
	s.deliver(f)
	s.next = num + 1
	s.drain()
	return true
}

// fromCopy takes a copy of frame num: it delivers it when it is the next
// one, holds it when it is a little ahead, and drops it otherwise. It
// reports whether the frame was delivered and whether it was malformed.
func (s *frameSeq) fromCopy(num uint32, frame []byte) (delivered, bad bool) {
	t, n, err := reliable.ParseHeader(frame, s.maxFrame)
	if err != nil || !copyable(t) || n != len(frame)-reliable.HeaderLen {
		return false, true
	}
	f, err := reliable.ParseBody(t, frame[reliable.HeaderLen:])
	if err != nil {
		return false, true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gate != nil || s.moved {
		return false, false // frozen: the stream delivers it, or another server does
	}
	switch ahead := num - s.next; {
	case ahead >= 1<<31: // delivered already
		return false, false
	case ahead == 0:
		s.deliver(f)
		s.next++
		s.drain()
		return true, false
	case ahead < maxHeld:
		if s.held == nil {
			s.held = new([maxHeld]heldCopy)
		}
		h := &s.held[num%maxHeld]
		if !h.valid || h.num != num {
			h.num, h.valid, h.frame = num, true, append(h.frame[:0], frame...)
		}
		s.heldIdle.used = true
	}
	return false, false
}

// freeze holds every frame not yet delivered back, and returns the number
// of the next one: a handoff exports it, and the frames from it on are the
// new server's to handle. It waits for a delivery under way.
func (s *frameSeq) freeze() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gate == nil {
		s.gate = make(chan struct{})
	}
	return s.next
}

// thaw lets the held frames go on (moved false: an aborted handoff), or
// drops them and every later one (moved: the handoff committed).
func (s *frameSeq) thaw(moved bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.moved = s.moved || moved
	if s.gate != nil {
		close(s.gate)
		s.gate = nil
	}
}

// trim lets the ring of copies held ahead go, with their frames' buffers,
// once no copy held waits to be delivered and none was held for
// trimAfter (housekeeping, peer.trim). Only a lossy path fills it, and a
// path that was lossy once need not hold it for the connection's life.
func (s *frameSeq) trim(now time.Time) {
	if !s.mu.TryLock() {
		return // a frame's handler runs: not idle, and it may take long
	}
	defer s.mu.Unlock()
	if s.held == nil {
		return
	}
	for i := range s.held {
		if h := &s.held[i]; h.valid && h.num-s.next < 1<<31 {
			return // ahead: still to be delivered
		}
	}
	if s.heldIdle.idle(now, trimAfter) {
		s.held = nil
	}
}

// drain delivers held copies that are next in line.
func (s *frameSeq) drain() {
	for s.held != nil {
		h := &s.held[s.next%maxHeld]
		if !h.valid || h.num != s.next {
			return
		}
		h.valid = false
		f, _ := reliable.ParseBody(reliable.FrameType(h.frame[0]), h.frame[reliable.HeaderLen:]) // checked in fromCopy
		s.deliver(f)
		s.next++
	}
}
