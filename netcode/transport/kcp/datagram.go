package kcp

import (
	"context"
	"fmt"

	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/netcode/transport/secure"
)

// datagram delivers one opened datagram, valid only during the call, on
// the receive goroutine: to the handler, else into the queue for
// ReceiveDatagram.
func (s *Session) datagram(p []byte) {
	if f := s.handler.Load(); f != nil {
		(*f)(p)
		return
	}
	q := s.queue()
	if len(q) == cap(q) {
		s.dropped.Add(1) // the application is not reading: drop, like a full socket buffer
		return
	}
	select {
	case q <- append([]byte(nil), p...):
	default:
		s.dropped.Add(1)
	}
}

// queue returns the datagram queue, made at the first need.
func (s *Session) queue() chan []byte {
	if q := s.dgram.Load(); q != nil {
		return *q
	}
	s.dmu.Lock()
	defer s.dmu.Unlock()
	if q := s.dgram.Load(); q != nil {
		return *q
	}
	q := make(chan []byte, datagramQueue)
	s.dgram.Store(&q)
	return q
}

// HandleDatagrams makes the receive goroutine (the listener's reader, or a
// dialled session's) call f with each datagram that arrives from now on,
// in place of queueing it for ReceiveDatagram. p is the goroutine's buffer,
// valid only during the call.
func (s *Session) HandleDatagrams(f func(p []byte)) { s.handler.Store(&f) }

// SendDatagram seals p into one UDP packet.
func (s *Session) SendDatagram(p []byte) error {
	if err := s.datagramOK(p); err != nil {
		return err
	}
	return s.seal(secure.PacketDatagram, p)
}

// TrySendDatagram is SendDatagram, which never blocks on a peer: a UDP
// write waits for nobody.
func (s *Session) TrySendDatagram(p []byte) (bool, error) {
	return true, s.SendDatagram(p)
}

// AddDatagram seals p into b, for the socket's next sendmmsg at b.Flush.
func (s *Session) AddDatagram(b *transport.Batch, p []byte) error {
	if err := s.datagramOK(p); err != nil {
		return err
	}
	return s.sealInto(b, s.bw, secure.PacketDatagram, p)
}

// datagramOK returns why p cannot be sent now, or nil.
func (s *Session) datagramOK(p []byte) error {
	select {
	case <-s.done:
		return s.err()
	default:
	}
	if len(p) > secure.MaxPayload {
		return fmt.Errorf("kcp: datagram of %d bytes > %d", len(p), secure.MaxPayload)
	}
	return nil
}

// ReceiveDatagram returns the next datagram.
func (s *Session) ReceiveDatagram(ctx context.Context) ([]byte, error) {
	select {
	case d := <-s.queue():
		return d, nil
	case <-s.done:
		return nil, s.err()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// MaxDatagram is the largest datagram that fits one sealed packet.
func (s *Session) MaxDatagram() int { return secure.MaxPayload }
