// Package transport is the seam between Roomwire's connection logic and the
// network. A transport gives each connection a Session: one reliable, ordered
// byte stream and an unreliable datagram channel. Implementations live in
// subpackages (quic, kcp, websocket, webtransport) and must pass the
// conformance suite, netcode's behaviour tests over netcodetest.Transports.
//
// Optional interfaces let netcode save goroutine wake-ups where a
// transport allows: DatagramHandler (datagrams handled on the transport's
// own receive loop), TrySender and BoundedQueue (a room's tick sends
// without waiting), BatchSender with Batch (a tick's datagrams for every
// session of a socket in one sendmmsg), ReadNotifier (no goroutine parked
// on an idle stream), WriteReady (a request written by its caller), PathRTT
// and Challenged. A
// transport implements those that hold for it; netcode falls back to the
// plain Session methods on a goroutine of the connection's.
//
// A session may read its datagrams only while its Read is being called: a
// WebSocket server's may have one reader, Read's caller, for the whole stream.
// netcode reads every session's stream for as long as the session lives
// (or parks on ReadNotifier), so its datagrams always flow.
//
// A Session's Read and Write may be called from different goroutines, and
// SendDatagram and ReceiveDatagram likewise, but no method is called by two
// goroutines at once except Close, which is safe at any time and more than
// once. After Close, or after the peer closes, every blocking method returns
// an error that satisfies errors.Is(err, net.ErrClosed) or is a *CloseError.
package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// Session is one connection's pair of channels.
type Session interface {
	// Read reads from the reliable stream.
	Read(p []byte) (int, error)
	// Write writes to the reliable stream. It blocks only on flow control.
	Write(p []byte) (int, error)
	// SendDatagram sends one unreliable datagram. It does not keep p. It may
	// block briefly when the transport's own queue is full, so callers on
	// latency-critical goroutines should hand datagrams to a sender goroutine.
	SendDatagram(p []byte) error
	// ReceiveDatagram returns the next datagram. The caller owns the slice.
	ReceiveDatagram(ctx context.Context) ([]byte, error)
	// MaxDatagram is the largest datagram SendDatagram accepts now.
	MaxDatagram() int
	// Close ends the session, telling the peer the code and reason where the
	// transport can carry them. It is idempotent.
	Close(code uint16, reason string) error
	// Done is closed once the session has ended, for either side's reason.
	Done() <-chan struct{}
	// RemoteAddr is the peer's network address.
	RemoteAddr() net.Addr
}

// PathRTT is implemented by sessions whose transport measures the path's
// round-trip time itself (QUIC and KCP do, from their acknowledgements).
// netcode uses it to decide whether reliable frames are worth copying into
// datagrams: on a fast, clean path the transport's own retransmission is
// quick enough.
type PathRTT interface {
	// RTT is the transport's smoothed round-trip time, 0 before it has a
	// sample.
	RTT() time.Duration
}

// KeptAlive is implemented by sessions whose transport keeps a working path
// alive by itself: either side sends a keep-alive once it has heard nothing
// for KeepAlive, and the other answers, so that each side hears the other
// at least every KeepAlive plus a round trip. netcode then finds a dead
// path from Heard alone and sends no PINGs of its own to probe it (QUIC and
// KCP keep alive; a WebSocket does not).
type KeptAlive interface {
	// Heard is a count that grows whenever anything arrives from the peer,
	// keep-alives and acknowledgements included.
	Heard() uint64
	// KeepAlive is the longest either side stays silent on a working path.
	KeepAlive() time.Duration
}

// ReadNotifier is implemented by sessions that can say when Read has
// something to return, so that a connection whose stream is idle needs no
// goroutine parked in Read. On a server with thousands of idle players,
// the stacks of such goroutines would be most of its memory per player
// (KCP, WebSocket on Linux, and QUIC and WebTransport with ReadAhead
// implement it; netcode uses it on a server's connections).
type ReadNotifier interface {
	// NotifyReadable returns false when Read would return at once: bytes
	// are ready, or the session ended. Otherwise it returns true and calls
	// f once, when that becomes so, on a goroutine of the transport's that
	// must not wait: f must not block (it starts a reader). Until f is
	// called, no Read may run; a later call replaces an f not yet called.
	NotifyReadable(f func()) bool
}

// WriteReady is implemented by sessions that can tell when a short Write
// would not wait for the peer, so that a client's request is written on
// the goroutine that waits for its reply anyway, instead of waking a
// writer goroutine: on a WebSocket over loopback that wake-up is a third of
// a round trip (WebSocket implements it on a client's session).
type WriteReady interface {
	// WriteReady reports whether a Write of n bytes now would not wait: no
	// other write holds or waits for the stream, the socket holds nothing
	// unsent, and n is small enough to go out in one system call. It is a
	// hint; a false one costs only a wake-up.
	WriteReady(n int) bool
}

// Challenged is implemented by sessions whose transport gives the
// application no TLS keying material to bind a connect token to: WebSocket
// and WebTransport, since browsers cannot export it. On them the server
// opens the reliable stream with a CHALLENGE frame of random bytes, and the
// client binds its token proof to those instead (PROTOCOL.md 7.7).
type Challenged interface {
	// Challenged marks the session; it does nothing.
	Challenged()
}

// IP is the IP address of a network address, an IPv4-mapped IPv6 address
// as IPv4, or the zero Addr when it has none: what per-address limits and
// connect tokens are bound to (a QUIC connection may change its port).
func IP(a net.Addr) netip.Addr {
	if ua, ok := a.(*net.UDPAddr); ok {
		return ua.AddrPort().Addr().Unmap()
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// Listener accepts sessions from clients.
type Listener interface {
	// Accept waits for the next session whose transport handshake completed.
	Accept(ctx context.Context) (Session, error)
	// Close stops accepting and releases the socket. Sessions already
	// accepted live on. It is idempotent.
	Close() error
	// Addr is the local address the listener is bound to.
	Addr() net.Addr
}

// AcceptFrom waits for the next session on ch for a Listener built on a
// channel: it returns net.ErrClosed once done is closed, and ctx's error
// when ctx ends first.
func AcceptFrom[S Session](ctx context.Context, ch <-chan S, done <-chan struct{}) (Session, error) {
	select {
	case s := <-ch:
		return s, nil
	case <-done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// CloseError reports a session ended by a close code and reason, from the peer
// (Remote) or from this side.
type CloseError struct {
	Code   uint16
	Reason string
	Remote bool
}

func (e *CloseError) Error() string {
	who := "local"
	if e.Remote {
		who = "peer"
	}
	return fmt.Sprintf("closed by %s: code %d: %s", who, e.Code, e.Reason)
}

// Unwrap lets errors.Is(err, net.ErrClosed) hold for every CloseError.
func (e *CloseError) Unwrap() error { return net.ErrClosed }

// AsCloseError returns the *CloseError in err's chain, if any.
func AsCloseError(err error) (*CloseError, bool) {
	var ce *CloseError
	ok := errors.As(err, &ce)
	return ce, ok
}

// DatagramHandler is implemented by sessions that can hand each arriving
// datagram to a function on the transport's own receive loop, in place of
// ReceiveDatagram. That saves a goroutine wake-up per datagram: a busy
// server's profile shows most of its CPU in such wake-ups, not in its work.
type DatagramHandler interface {
	// HandleDatagrams makes the session call f with every datagram that
	// arrives from now on instead of queueing it for ReceiveDatagram. f
	// runs on the transport's receive goroutine, one call at a time for
	// the session; it must not block, and p is valid only during the
	// call. Call it at most once.
	HandleDatagrams(f func(p []byte))
}

// TrySender is implemented by sessions that can send a datagram from a
// goroutine that must not wait, such as a room's tick loop, when sending
// it would not block.
type TrySender interface {
	// TrySendDatagram sends p if that does not block and reports whether
	// it did. (false, nil) means "not now": the caller hands p to a
	// goroutine that may wait in SendDatagram. It does not keep p.
	TrySendDatagram(p []byte) (bool, error)
}

// BoundedQueue is implemented by sessions whose SendDatagram blocks only
// while a bounded number of datagrams wait in the transport unsent (QUIC:
// quic-go queues 32). netcode then sends from a goroutine that must not
// wait while fewer of its datagrams than that are unacknowledged, since
// the transport's queue can hold no more than those.
type BoundedQueue interface {
	// DatagramQueueLen is how many unsent datagrams the transport queues
	// before SendDatagram blocks.
	DatagramQueueLen() int
}

// BatchSender is implemented by sessions whose datagrams can join a Batch,
// to be written with those of other sessions on the same socket in one
// system call.
type BatchSender interface {
	// AddDatagram puts p, framed and sealed for the peer, into b; it goes
	// out at b.Flush. It never blocks and does not keep p.
	AddDatagram(b *Batch, p []byte) error
}

// Packet is one UDP packet of a Batch.
type Packet struct {
	Buf  []byte
	Addr *net.UDPAddr
}

// BatchWriter is a UDP socket that writes many packets at once (sendmmsg
// where the system has it).
type BatchWriter interface {
	// WriteBatch writes pkts, in order. A packet that cannot be written
	// is dropped, as UDP may; the error says why.
	WriteBatch(pkts []Packet) error
}

// maxBatch is how many packets a Batch holds per socket before it writes
// them without waiting for Flush. A sendmmsg of 128 costs little more per
// packet than one of 1024 (Linux's most), and the Batch keeps no more
// buffers than that however many sessions it serves.
const maxBatch = 128

// Batch collects the datagrams one goroutine sends to many sessions, such
// as a room's snapshot to every member, so that each socket writes them in
// one system call at Flush instead of one each. It is owned by one
// goroutine at a time; the zero value is ready, and a reused Batch does not
// allocate.
type Batch struct {
	groups []batchGroup
	free   [][]byte
}

type batchGroup struct {
	w    BatchWriter
	pkts []Packet
}

// Buffer returns an empty buffer with room for n bytes, for one packet to
// pass to Add.
func (b *Batch) Buffer(n int) []byte {
	if k := len(b.free); k > 0 && cap(b.free[k-1]) >= n {
		p := b.free[k-1]
		b.free = b.free[:k-1]
		return p[:0]
	}
	return make([]byte, 0, max(n, 1500))
}

// Add queues p, a filled buffer from Buffer, for addr through w.
func (b *Batch) Add(w BatchWriter, addr *net.UDPAddr, p []byte) error {
	for i := range b.groups {
		g := &b.groups[i]
		if g.w == w {
			g.pkts = append(g.pkts, Packet{Buf: p, Addr: addr})
			if len(g.pkts) >= maxBatch {
				return b.flushGroup(g)
			}
			return nil
		}
	}
	if len(b.groups) < cap(b.groups) {
		b.groups = b.groups[:len(b.groups)+1] // keeps the slot's packet slice
	} else {
		b.groups = append(b.groups, batchGroup{})
	}
	g := &b.groups[len(b.groups)-1]
	g.w = w
	g.pkts = append(g.pkts[:0], Packet{Buf: p, Addr: addr})
	return nil
}

// Len is the number of packets queued.
func (b *Batch) Len() int {
	n := 0
	for _, g := range b.groups {
		n += len(g.pkts)
	}
	return n
}

// Flush writes every queued packet and empties the batch. It returns the
// first write error; the other sockets' packets are written regardless.
func (b *Batch) Flush() error {
	var first error
	for i := range b.groups {
		if err := b.flushGroup(&b.groups[i]); err != nil && first == nil {
			first = err
		}
		b.groups[i].w = nil // a closed socket is not kept
	}
	b.groups = b.groups[:0]
	return first
}

func (b *Batch) flushGroup(g *batchGroup) error {
	if len(g.pkts) == 0 {
		return nil
	}
	err := g.w.WriteBatch(g.pkts)
	for i := range g.pkts {
		b.free = append(b.free, g.pkts[i].Buf)
		g.pkts[i] = Packet{}
	}
	g.pkts = g.pkts[:0]
	return err
}
