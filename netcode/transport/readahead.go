package transport

import "io"

// ReadAhead makes a ReadNotifier of a session whose stream tells no one
// when it has bytes (quic-go's and webtransport-go's): a goroutine of its
// own waits in a read of one byte, which the session's Read returns first,
// and then calls the notifier's f. That goroutine calls nothing else while
// it waits, so its stack stays at its smallest, where a connection's read
// loop parked in Read would keep the stack that handling frames grew, and
// its buffers. The zero value is ready; the session's Read and Notify
// follow ReadNotifier's rules: no Read until f is called.
type ReadAhead struct {
	b   [1]byte
	n   int
	err error
}

// Take returns what the goroutine read, if anything is left of it: ok is
// false when the session's Read should read its stream instead.
func (a *ReadAhead) Take(p []byte) (n int, ok bool, err error) {
	if !a.held() {
		return 0, false, nil
	}
	if len(p) == 0 {
		return 0, true, nil
	}
	n, err = copy(p, a.b[:a.n]), a.err
	a.n, a.err = 0, nil
	return n, true, err
}

// Notify is the session's NotifyReadable over stream r: false, with
// nothing started, when Read would return at once.
func (a *ReadAhead) Notify(r io.Reader, f func()) bool {
	if a.held() {
		return false
	}
	go a.read(r, f)
	return true
}

// held reports whether the last read ahead is still to be taken.
func (a *ReadAhead) held() bool { return a.n > 0 || a.err != nil }

// read is Notify's goroutine; it ends with its read, when a byte comes or
// the stream ends.
func (a *ReadAhead) read(r io.Reader, f func()) {
	a.n, a.err = r.Read(a.b[:])
	f()
}
