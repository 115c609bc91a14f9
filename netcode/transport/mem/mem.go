// Package mem is an in-process transport: sessions are pairs of in-memory
// pipes and datagram queues. Benchmarks use it to measure Roomwire's own
// cost without a network, and tests use its hooks to make a peer stall.
// It is not for production.
package mem

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/unreliable"
)

// datagramQueue is how many datagrams wait per direction; more are dropped,
// as a UDP socket buffer would.
const datagramQueue = 256

type addr string

func (a addr) Network() string { return "mem" }
func (a addr) String() string  { return string(a) }

// Listener accepts in-memory sessions made by its Dial.
type Listener struct {
	name     string
	incoming chan *Session
	done     chan struct{}
	once     sync.Once
	mu       sync.Mutex
	dials    int
	// SendDatagramHook, if set, replaces SendDatagram on the server side of
	// every new session: tests use it to make a member stall.
	SendDatagramHook func(s *Session, p []byte) error
}

var _ transport.Listener = (*Listener)(nil)

// NewListener returns a listener named name.
func NewListener(name string) *Listener {
	return &Listener{name: name, incoming: make(chan *Session), done: make(chan struct{})}
}

// Accept returns the next dialled session.
func (l *Listener) Accept(ctx context.Context) (transport.Session, error) {
	return transport.AcceptFrom(ctx, l.incoming, l.done)
}

// Close stops accepting.
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr is the listener's name.
func (l *Listener) Addr() net.Addr { return addr(l.name) }

// Dial makes a connected pair and hands the server side to Accept; it
// returns the client side. The n-th dialled client's address is "client-n".
func (l *Listener) Dial(ctx context.Context) (transport.Session, error) {
	c, s := Pipe()
	l.mu.Lock()
	l.dials++
	c.local = fmt.Sprintf("client-%d", l.dials)
	s.local = fmt.Sprintf("server-%d", l.dials)
	l.mu.Unlock()
	s.hook = l.SendDatagramHook
	select {
	case l.incoming <- s:
		return c, nil
	case <-l.done:
		return nil, errors.New("mem: listener closed")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Session is one side of an in-memory connection.
type Session struct {
	r      *io.PipeReader
	w      *io.PipeWriter
	in     chan []byte
	peer   *Session
	shared *closeState
	hook   func(*Session, []byte) error
	local  string
}

type closeState struct {
	once sync.Once
	done chan struct{}
	mu   sync.Mutex
	err  map[*Session]*transport.CloseError // what each side sees
}

var _ transport.Session = (*Session)(nil)

// Pipe returns two connected sessions.
func Pipe() (client, server *Session) {
	cr, sw := io.Pipe()
	sr, cw := io.Pipe()
	st := &closeState{done: make(chan struct{}), err: make(map[*Session]*transport.CloseError)}
	client = &Session{r: cr, w: cw, in: make(chan []byte, datagramQueue), shared: st, local: "client"}
	server = &Session{r: sr, w: sw, in: make(chan []byte, datagramQueue), shared: st, local: "server"}
	client.peer, server.peer = server, client
	return client, server
}

func (s *Session) mapErr(err error) error {
	if err == nil {
		return nil
	}
	s.shared.mu.Lock()
	ce := s.shared.err[s]
	s.shared.mu.Unlock()
	if ce != nil {
		return ce
	}
	return err
}

func (s *Session) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	return n, s.mapErr(err)
}

func (s *Session) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	return n, s.mapErr(err)
}

// SendDatagram copies p into the peer's queue, dropping it when the queue is
// full.
func (s *Session) SendDatagram(p []byte) error {
	if s.hook != nil {
		return s.hook(s, p)
	}
	return s.Deliver(p)
}

// Deliver is SendDatagram without the hook.
func (s *Session) Deliver(p []byte) error {
	select {
	case <-s.shared.done:
		return s.mapErr(net.ErrClosed)
	default:
	}
	select {
	case s.peer.in <- append([]byte(nil), p...):
	default:
	}
	return nil
}

// ReceiveDatagram returns the next queued datagram.
func (s *Session) ReceiveDatagram(ctx context.Context) ([]byte, error) {
	select {
	case d := <-s.in:
		return d, nil
	case <-s.shared.done:
		return nil, s.mapErr(net.ErrClosed)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// MaxDatagram is the protocol's datagram limit.
func (s *Session) MaxDatagram() int { return unreliable.MaxDatagram }

// Close ends both sides; the peer sees the code and reason.
func (s *Session) Close(code uint16, reason string) error {
	s.shared.once.Do(func() {
		s.shared.mu.Lock()
		s.shared.err[s] = &transport.CloseError{Code: code, Reason: reason}
		s.shared.err[s.peer] = &transport.CloseError{Code: code, Reason: reason, Remote: true}
		s.shared.mu.Unlock()
		close(s.shared.done)
		_ = s.r.Close()
		_ = s.w.Close()
		_ = s.peer.r.Close()
		_ = s.peer.w.Close()
	})
	return nil
}

// Done is closed once either side closed.
func (s *Session) Done() <-chan struct{} { return s.shared.done }

// RemoteAddr names the other side.
func (s *Session) RemoteAddr() net.Addr { return addr(s.peer.local) }
