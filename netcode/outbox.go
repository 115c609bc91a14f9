package netcode

import "sync"

// outbox is a connection's queue of encoded reliable frames. Producers append
// under the lock with begin/end, so encoding goes straight into the queue
// without a copy; one writer goroutine swaps the buffer out and writes it.
// Two buffers alternate, so a steady flow does not allocate. The queue is
// bounded: a producer that pushes it past limit gets ErrSlowConsumer.
type outbox struct {
	mu      sync.Mutex
	buf     []byte
	spare   []byte
	limit   int
	closed  bool // no more frames accepted
	closing bool // a CLOSE frame is queued: write it, then stop
	wake    chan struct{}
	flushed chan struct{} // closed by the writer after the last frame went out
}

func newOutbox(limit int) *outbox {
	return &outbox{limit: limit, wake: make(chan struct{}, 1), flushed: make(chan struct{})}
}

// begin locks the queue and returns its buffer to append to, or ok=false
// when the queue is closed (and unlocked).
func (o *outbox) begin() (b []byte, ok bool) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil, false
	}
	return o.buf, true
}

// end stores the appended buffer, unlocks and wakes the writer. A buffer past
// the limit is refused with ErrSlowConsumer.
func (o *outbox) end(b []byte) error {
	over := len(b) > o.limit
	if !over {
		o.buf = b
	}
	o.mu.Unlock()
	if over {
		return ErrSlowConsumer
	}
	o.signal()
	return nil
}

// abort unlocks without storing anything.
func (o *outbox) abort() { o.mu.Unlock() }

func (o *outbox) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// shut queues a last frame (if non-nil) and refuses all further ones.
func (o *outbox) shut(last []byte) {
	o.mu.Lock()
	if !o.closed {
		o.closed = true
		o.closing = true
		o.buf = append(o.buf, last...)
	}
	o.mu.Unlock()
	o.signal()
}

// writeLoop writes queued frames with write until the queue is shut (then it
// writes what is left, calls closeSession and returns) or a write fails.
// bytes is called with each write's size.
func (o *outbox) writeLoop(write func([]byte) (int, error), bytes func(int), closeSession func()) {
	defer func() {
		o.mu.Lock()
		o.closed = true
		o.mu.Unlock()
		closeSession()
	}()
	for range o.wake {
		o.mu.Lock()
		b := o.buf
		o.buf = o.spare[:0]
		o.spare = nil
		last := o.closing
		o.mu.Unlock()
		if len(b) > 0 {
			n, err := write(b)
			bytes(n)
			if err != nil {
				return
			}
		}
		if last {
			close(o.flushed)
			return
		}
		o.mu.Lock()
		o.spare = b[:0]
		o.mu.Unlock()
	}
}
