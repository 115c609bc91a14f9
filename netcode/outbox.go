package netcode

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/roomwire/roomwire/reliable"
)

// outbox is a connection's queue of encoded reliable frames. Producers append
// under the lock with begin/end, so encoding goes straight into the queue
// without a copy. A writer goroutine swaps the buffer out and writes it; it
// is started when there is something to write and ends when the queue is
// empty, so an idle connection has none. A goroutine that is waiting for
// the peer anyway (a request, a reply on the reader goroutine) may flush
// itself and save the hand-off. Two buffers alternate, so a steady flow does
// not allocate; once nothing was written for trimAfter, trim lets both go.
// The queue is bounded: a producer that pushes it past limit gets
// ErrSlowConsumer.
type outbox struct {
	mu      sync.Mutex
	buf     []byte
	spare   []byte
	limit   int
	closed  bool  // no more frames accepted
	sealed  bool  // closed for a handoff, which may yet be aborted (seal)
	closing bool  // a CLOSE frame is queued: write it, then stop
	writing bool  // a goroutine holds the write turn
	corked  bool  // hold writes: frames queue but the writer is not woken
	failed  error // a write failed: the session is gone
	ended   bool  // the writer closed the session: no writer starts again
	// lost: the transport is gone and the session is away, waiting for a
	// resume (resume.go). Nothing is written; new frames are numbered and
	// shown to onFrame (the replay log) but not queued, and reattach
	// queues the replay for the new transport.
	lost   bool
	writer worker
	idle   idleMark // trim's: flush uses it

	// spawn starts a goroutine the connection owns, or reports false once
	// the connection is finishing; closeSession closes the transport
	// session, after the last frame or a failed write.
	spawn        func(func()) bool
	closeSession func()

	write   func([]byte) (int, error)
	written func(int)

	// Frames are numbered by their place on the stream, the handshake frame
	// being 0: frames counts those queued so far, and onFrame, if set, sees
	// every frame after the handshake frame with its number (under mu).
	frames  uint32
	mark    int // len(buf) at begin: where the frames being appended start
	onFrame func(num uint32, frame []byte, copy bool)
	// noCopy, set between begin and end, tells onFrame that the frames
	// being appended are not to be copied (5.17): an idle clock's PING and
	// its PONG. begin clears it.
	noCopy bool

	// writeBegun is when the write under way began (unix nanoseconds, 0:
	// none); one that takes stallAfter (if set, before the writer starts)
	// says the peer does not read (peer.overdue).
	writeBegun atomic.Int64
	stallAfter time.Duration
}

func newOutbox(limit int, write func([]byte) (int, error), written func(int)) *outbox {
	o := &outbox{limit: limit, write: write, written: written}
	o.writer = newWorker(o.writeLoop)
	return o
}

// begin locks the queue and returns its buffer to append to, or ok=false
// when the queue is closed (and unlocked).
func (o *outbox) begin() (b []byte, ok bool) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil, false
	}
	o.mark, o.noCopy = len(o.buf), false
	return o.buf, true
}

// number counts the whole frames in b, just queued, and shows each to
// onFrame.
func (o *outbox) number(b []byte) {
	for len(b) >= reliable.HeaderLen {
		n := reliable.HeaderLen + (int(b[1])<<16 | int(b[2])<<8 | int(b[3]))
		if n > len(b) {
			return // encoders append whole frames only
		}
		if o.frames != 0 && o.onFrame != nil {
			o.onFrame(o.frames, b[:n:n], !o.noCopy)
		}
		o.frames++
		b = b[n:]
	}
}

// end stores the appended buffer, unlocks and wakes the writer. A buffer past
// the limit is refused with ErrSlowConsumer.
func (o *outbox) end(b []byte) error {
	over := len(b) > o.limit
	if !over {
		o.buf = b
		o.number(b[o.mark:])
		if o.lost {
			o.buf = b[:o.mark] // held by the replay log until the resume
		}
	}
	corked := o.corked || o.lost
	o.mu.Unlock()
	if over {
		return ErrSlowConsumer
	}
	if !corked {
		o.signal()
	}
	return nil
}

// unnumbered queues a frame that precedes the numbered ones: the server's
// CHALLENGE, before its WELCOME (frame 0).
func (o *outbox) unnumbered(frame []byte) {
	o.mu.Lock()
	o.buf = append(o.buf, frame...)
	o.mu.Unlock()
	o.signal()
}

// cork holds queued frames back until uncork; they keep their order.
func (o *outbox) cork() {
	o.mu.Lock()
	o.corked = true
	o.mu.Unlock()
}

// uncork lets the writer send what queued while corked.
func (o *outbox) uncork() {
	o.mu.Lock()
	o.corked = false
	o.mu.Unlock()
	o.signal()
}

// endQuiet is end without waking the writer goroutine: the caller flushes
// itself right after.
func (o *outbox) endQuiet(b []byte) error {
	if len(b) > o.limit {
		o.mu.Unlock()
		return ErrSlowConsumer
	}
	o.buf = b
	o.number(b[o.mark:])
	if o.lost {
		o.buf = b[:o.mark]
	}
	o.mu.Unlock()
	return nil
}

// abort unlocks without storing anything.
func (o *outbox) abort() { o.mu.Unlock() }

// signal wakes the writer goroutine, or starts one unless there is nothing
// for it to do.
func (o *outbox) signal() {
	o.mu.Lock()
	idle := len(o.buf) == 0 && !o.closing && o.failed == nil
	o.writer.kick(&o.mu, !o.ended && !idle && !o.lost && (!o.corked || o.closing), o.spawn)
}

// shut queues a last frame (if non-nil) and refuses all further ones. It
// uncorks: a closing connection's last frames go out.
func (o *outbox) shut(last []byte) {
	o.mu.Lock()
	o.corked = false
	if !o.closed || o.sealed {
		o.closed, o.sealed = true, false
		o.closing = true
		o.mark = len(o.buf)
		o.buf = append(o.buf, last...)
		o.number(o.buf[o.mark:])
	}
	o.mu.Unlock()
	o.signal()
}

// seal refuses new frames without closing, for a handoff, and returns the
// number the next frame would have had; unseal takes them again (an
// aborted handoff), and shut queues a last one (the committed handoff's
// word to the peer). ok is false when the queue is closed already.
func (o *outbox) seal() (next uint32, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return 0, false
	}
	o.closed, o.sealed = true, true
	return o.frames, true
}

func (o *outbox) unseal() {
	o.mu.Lock()
	if o.sealed {
		o.closed, o.sealed = false, false
	}
	o.mu.Unlock()
}

// flush writes what is queued until the queue is empty, unless another
// goroutine is writing already: that one picks the new bytes up before it
// stops. Whoever holds the queue's write turn is the only writer, so frames
// never interleave. A failed write is returned; the writer goroutine then
// ends the connection.
func (o *outbox) flush() error {
	o.mu.Lock()
	if o.writing || o.corked || o.lost {
		o.mu.Unlock()
		return nil
	}
	o.writing = true
	var err error
	for len(o.buf) > 0 && err == nil && !o.lost {
		b := o.buf
		o.buf = o.spare[:0]
		o.spare = nil
		o.idle.used = true
		o.mu.Unlock()
		if o.stallAfter > 0 {
			o.writeBegun.Store(time.Now().UnixNano())
		}
		var n int
		n, err = o.write(b)
		if o.stallAfter > 0 {
			o.writeBegun.Store(0)
		}
		o.written(n)
		o.mu.Lock()
		o.spare = b[:0]
	}
	o.writing = false
	if errors.Is(err, errLost) {
		o.lost, err = true, nil // the bytes are in the replay log
	}
	if err != nil {
		o.failed = err
	}
	wake := o.closing || err != nil
	o.mu.Unlock()
	if wake {
		o.signal() // let the writer goroutine finish the close
	}
	return err
}

// linger is how long a connection's writer or datagram sender goroutine
// waits for more work before it ends: a steady flow keeps it, an idle
// connection has none.
const linger = 2 * time.Second

// writeLoop is the connection's writer goroutine: it flushes whenever there
// is something to write, and ends after linger with nothing; or, once the
// queue is shut and empty or a write failed, it closes the session and
// ends for good.
func (o *outbox) writeLoop() {
	var idle *time.Timer
	defer func() {
		if idle != nil {
			idle.Stop()
		}
	}()
	for {
		err := o.flush()
		o.mu.Lock()
		if err != nil || o.failed != nil || (o.closing && !o.writing && (len(o.buf) == 0 || o.lost)) {
			o.closed, o.ended, o.sealed = true, true, false
			o.mu.Unlock()
			o.closeSession()
			return
		}
		// Bytes left while another goroutine writes are its to write; it
		// signals when it is done if a close waits.
		more := len(o.buf) > 0 && !o.writing && !o.corked && !o.lost
		o.mu.Unlock()
		if more {
			continue
		}
		if idle == nil {
			idle = time.NewTimer(linger)
		} else {
			idle.Reset(linger)
		}
		select {
		case <-o.writer.wake:
		case <-idle.C:
			o.mu.Lock()
			if !o.closing && o.failed == nil && (len(o.buf) == 0 || o.writing || o.corked || o.lost) {
				o.writer.end()
				o.mu.Unlock()
				return
			}
			o.mu.Unlock()
		}
	}
}

// errLost is what a write returns when the transport failed under a
// connection that can resume: the frames are kept for the replay.
var errLost = errors.New("netcode: transport lost")

// loseTransport stops writing: the session is away (resume.go).
func (o *outbox) loseTransport() {
	o.mu.Lock()
	o.lost = true
	o.buf = o.buf[:0]
	o.mu.Unlock()
}

// reattach queues first (an unnumbered frame, or nil) and then replay (the
// kept frames the peer has not handled) for a new transport, once no
// write to the old one is under way, and lets the writer go on; attach
// runs meanwhile, with the queue locked, to switch the transport.
func (o *outbox) reattach(first []byte, replay func() []byte, attach func()) {
	o.mu.Lock()
	for o.writing { // a write to the old, closed transport is failing
		o.mu.Unlock()
		time.Sleep(time.Millisecond)
		o.mu.Lock()
	}
	attach()
	// The replay is taken here, under the queue's lock: a frame queued
	// since the resume began is in it, and none can slip in after.
	o.buf = append(append(o.buf[:0], first...), replay()...)
	o.lost = false
	o.mu.Unlock()
	o.signal()
}

// control queues an unnumbered frame (ACKED) unless the queue is closed
// or its transport lost: such a frame only says something about now.
func (o *outbox) control(frame []byte) {
	if o.controlQuiet(frame) {
		o.signal()
	}
}

// controlQuiet is control without waking the writer goroutine, for a
// caller that flushes itself right after; it reports whether it queued
// the frame.
func (o *outbox) controlQuiet(frame []byte) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed || o.lost {
		return false
	}
	o.buf = append(o.buf, frame...)
	return true
}

// trim lets the two buffers go once nothing is queued or being written and
// nothing was written for trimAfter (housekeeping, peer.trim): the next
// frame queued allocates one again.
func (o *outbox) trim(now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if (o.buf == nil && o.spare == nil) || len(o.buf) > 0 || o.writing || !o.idle.idle(now, trimAfter) {
		return
	}
	o.buf, o.spare = nil, nil
}
