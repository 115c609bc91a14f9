package reliable

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Reader reads frames from a byte stream. It owns one body buffer that grows
// to the largest frame seen, never past the limit; a frame returned by Next is
// valid until the following call. A Reader is not safe for concurrent use.
type Reader struct {
	src io.Reader
	r   *bufio.Reader // from bufReaders; nil until the first Next, and while parked
	max int
	hdr [HeaderLen]byte
	buf []byte

	// Partial, if set, is called with true when a frame has begun but its
	// bytes are not all buffered yet, so that Next will wait on the peer in
	// the middle of a frame, and with false once Next has the whole frame
	// (or failed). A caller uses it to bound that wait: a peer that starts
	// a frame and goes silent must not hold its reader forever. Waiting
	// between frames is not partial.
	Partial func(waiting bool)
}

// NewReader returns a Reader that refuses bodies larger than max bytes
// (DefaultMaxFrame when max is zero or negative, MaxFrameLimit at most).
func NewReader(r io.Reader, max int) *Reader {
	if max <= 0 {
		max = DefaultMaxFrame
	}
	max = min(max, MaxFrameLimit)
	return &Reader{src: r, max: max}
}

const (
	// readBuffer is a Reader's buffer while it reads.
	readBuffer = 2 << 10
	// parkedBody is the largest body buffer a parked Reader keeps: small
	// frames, the usual ones, then cost no allocation when it reads again.
	parkedBody = 256
)

// bufReaders holds the buffers of parked Readers for those that read.
var bufReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBuffer) }}

// Buffered is how many bytes the Reader holds that no Next returned yet.
func (r *Reader) Buffered() int {
	if r.r == nil {
		return 0
	}
	return r.r.Buffered()
}

// Park gives back the Reader's read buffer, and a large body buffer, while
// its stream is idle, if it holds nothing unread (Buffered is 0): a server
// keeps a Reader for each of its thousands of idle connections. The next
// Next takes a buffer again. It reports whether the Reader parked.
func (r *Reader) Park() bool {
	if r.r == nil {
		return true
	}
	if r.r.Buffered() > 0 {
		return false
	}
	r.r.Reset(nil)
	bufReaders.Put(r.r)
	r.r = nil
	if cap(r.buf) > parkedBody {
		r.buf = nil
	}
	return true
}

// Next reads and decodes one frame. A stream that ends between frames
// returns io.EOF; one that ends inside a frame returns an error wrapping
// ErrTruncated and io.ErrUnexpectedEOF.
func (r *Reader) Next() (Frame, error) {
	if r.r == nil {
		r.r = bufReaders.Get().(*bufio.Reader)
		r.r.Reset(r.src)
	}
	if _, err := r.r.Peek(1); err != nil { // between frames: waiting is fine
		return Frame{}, err
	}
	partial := false
	if r.Partial != nil && r.r.Buffered() < HeaderLen {
		partial = true
		r.Partial(true)
	}
	f, err := r.next(&partial)
	if partial {
		r.Partial(false)
	}
	return f, err
}

func (r *Reader) next(partial *bool) (Frame, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return Frame{}, fmt.Errorf("%w: stream ended inside a frame header: %w", ErrTruncated, err)
		}
		return Frame{}, err
	}
	t, n, err := ParseHeader(r.hdr[:], r.max)
	if err != nil {
		return Frame{Type: t}, err
	}
	if !*partial && r.Partial != nil && r.r.Buffered() < n {
		*partial = true
		r.Partial(true)
	}
	if cap(r.buf) < n {
		r.buf = make([]byte, n)
	}
	body := r.buf[:n]
	if _, err := io.ReadFull(r.r, body); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return Frame{Type: t}, fmt.Errorf("%w: stream ended inside a %s body of %d bytes: %w", ErrTruncated, t, n, io.ErrUnexpectedEOF)
		}
		return Frame{Type: t}, err
	}
	return ParseBody(t, body)
}
