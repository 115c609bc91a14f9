package kcp

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/netcode/transport/secure"
)

// batchWriter is a socket as a transport.BatchWriter: one sendmmsg per
// call (looped until every packet is written) on a rawUDP or a
// *net.UDPConn, one write per packet on any other PacketConn.
type batchWriter struct {
	conn PacketConn
	raw  *rawUDP          // nil unless conn is one
	pc   *ipv4.PacketConn // nil unless conn is a *net.UDPConn

	mu   sync.Mutex // guards msgs and sb, reused so that a call allocates nothing
	msgs []ipv4.Message
	sb   sendBufs
}

var _ transport.BatchWriter = (*batchWriter)(nil)

func newBatchWriter(conn PacketConn) *batchWriter {
	w := &batchWriter{conn: conn}
	switch c := conn.(type) {
	case *rawUDP:
		w.raw = c
	case *net.UDPConn:
		w.pc = ipv4.NewPacketConn(c)
	}
	return w
}

// WriteBatch writes pkts in order. A packet the system refuses is dropped
// and the rest are written; the error is the first refusal.
func (w *batchWriter) WriteBatch(pkts []transport.Packet) error {
	if w.raw != nil {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.raw.writeBatch(&w.sb, pkts)
	}
	if w.pc == nil {
		var first error
		for _, p := range pkts {
			if _, err := w.conn.WriteToUDPAddrPort(p.Buf, p.Addr.AddrPort()); err != nil && first == nil {
				first = err
			}
		}
		return first
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if cap(w.msgs) < len(pkts) {
		w.msgs = append(w.msgs[:cap(w.msgs)], make([]ipv4.Message, len(pkts)-cap(w.msgs))...)
	}
	msgs := w.msgs[:len(pkts)]
	for i, p := range pkts {
		m := &msgs[i]
		if m.Buffers == nil {
			m.Buffers = make([][]byte, 1)
		}
		m.Buffers[0] = p.Buf
		m.Addr = p.Addr
	}
	var first error
	for sent := 0; sent < len(msgs); {
		n, err := w.pc.WriteBatch(msgs[sent:], 0)
		sent += max(n, 0)
		if err != nil {
			if first == nil {
				first = err
			}
			if errors.Is(err, net.ErrClosed) {
				break
			}
			sent++ // the packet at sent was refused: drop it, as UDP may
		}
	}
	for i := range msgs {
		msgs[i].Buffers[0] = nil // keep no packet alive
		msgs[i].Addr = nil
	}
	return first
}

// outbox collects the packets one loop goroutine sends while it handles a
// batch of received packets or a round of timers, for one sendmmsg. It
// belongs to that goroutine; a session's output goes into it while that
// goroutine holds the session's lock (Session.out). A nil outbox sends at
// once.
type outbox struct {
	b transport.Batch
	w *batchWriter // the loop's own writer: no lock shared with others
}

// add seals payload as a packet of type t for s into the outbox.
func (o *outbox) add(s *Session, t secure.PacketType, payload []byte) {
	_ = s.sealInto(&o.b, o.w, t, payload) // written at flush; an error here is a refused packet
}

func (o *outbox) flush() {
	if o != nil {
		_ = o.b.Flush()
	}
}

// readBatch is how many packets a listener's reader takes per recvmmsg.
const readBatch = 32

// packetBuf is the size of a read buffer: one byte more than the largest
// packet, to tell an oversized one.
const packetBuf = secure.MaxPacket + 1

// readUDP reads conn in batches (recvmmsg) until it is closed, handing
// each packet to handle, and calls flush after each batch.
func readUDP(conn *net.UDPConn, handle func(p []byte, from netip.AddrPort, now int64), flush func()) {
	pc := ipv4.NewPacketConn(conn)
	msgs := make([]ipv4.Message, readBatch)
	for i := range msgs {
		msgs[i].Buffers = [][]byte{make([]byte, packetBuf)}
	}
	for {
		n, err := pc.ReadBatch(msgs, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // ICMP errors and the like: not fatal for a UDP socket
		}
		now := time.Now().UnixNano()
		for i := range msgs[:n] {
			m := &msgs[i]
			ua, ok := m.Addr.(*net.UDPAddr)
			if !ok {
				continue
			}
			handle(m.Buffers[0][:m.N], ua.AddrPort(), now)
			m.Addr = nil
		}
		flush()
	}
}

// readRaw reads u in batches until it is closed, handing each packet to
// handle and calling flush after each batch. While the listener is busy
// (many sessions sending), it sleeps Config.ReadCoalesce between reads
// instead of waiting for the next packet, so that one wake-up reads what
// arrived meanwhile: under load the packets of many players, not one.
func (l *Listener) readRaw(u *rawUDP, handle func(p []byte, from netip.AddrPort, now int64), flush func()) {
	r := newRecvBufs(readBatch, packetBuf)
	coalesce := l.cfg.ReadCoalesce
	for {
		n, err := u.recv(r)
		if err != nil {
			return // closed
		}
		l.stats.reads.Add(1)
		l.winReads++
		now := time.Now().UnixNano()
		for i := range n {
			p, from := r.packet(i)
			handle(p, from, now)
		}
		if n > 0 {
			flush()
		}
		switch {
		case n == len(r.hdrs):
			// More may be waiting: read on.
		case coalesce > 0 && l.busy(now):
			l.stats.coalesced.Add(1)
			if u.arm(false) != nil {
				return
			}
			time.Sleep(coalesce)
		default:
			if u.wait() != nil {
				return
			}
		}
	}
}

// readEach reads conn one packet at a time until it is closed, for
// PacketConns other than *net.UDPConn.
func readEach(conn PacketConn, handle func(p []byte, from netip.AddrPort, now int64)) {
	buf := make([]byte, packetBuf)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		handle(buf[:n], from, time.Now().UnixNano())
	}
}
