package impair

import (
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// NewDuplex wraps c like New, impairing what the Conn sends with send, and
// also impairs what it reads with receive: a packet that arrives is lost
// with receive.Loss, and is handed to a read only after receive.Delay and
// Jitter (held back further by Reorder, given twice by Duplicate). It puts
// one end of a path behind a bad network both ways, when the other end is a
// real server that cannot be wrapped: a client's socket, with a Profile's
// ToServer as send and ToClient as receive. The packet still crosses the
// real network first; the receive impairment is applied as it arrives, so
// what the reader sees is what a bad path in front of the socket would have
// delivered.
//
// receive.Seed seeds the receive side's own random source; receive.Network
// is ignored (send.Network darkens both ways, as with New). A receive
// Config with Loss alone filters in the read call itself. One that delays,
// reorders or duplicates starts two more goroutines, a reader of the socket
// and a delivery goroutine, and queues at most 4096 packets (not counting
// duplicates) waiting for their time or for a read; while the queue is
// full the socket is not read, and the kernel's buffer overflows as a
// router's queue would. Read deadlines then bound the wait for the queue.
// Close stops them all. SetConfig changes the send side only.
func NewDuplex(c *net.UDPConn, send, receive Config) *Conn {
	conn := New(c, send)
	receive = receive.normalize()
	if !receive.impairs() {
		return conn
	}
	pcg := rand.NewPCG(receive.Seed, receive.Seed^seedMix)
	in := &inbound{
		c:         conn,
		cfg:       receive,
		rng:       rand.New(pcg),
		queued:    receive.Delay > 0 || receive.Jitter > 0 || receive.Reorder > 0 || receive.Duplicate > 0,
		dlChanged: make(chan struct{}),
	}
	conn.in = in
	if in.queued {
		in.slots = make(chan struct{}, maxInFlight)
		in.wake = make(chan struct{}, 1)
		in.ready = make(chan *packet, maxInFlight)
		in.errs = make(chan error)
		in.wg.Add(2)
		go in.receive()
		go in.deliver()
	}
	return conn
}

// ReceiveStats counts what the receive impairment of a Conn from NewDuplex
// did with the packets that arrived, as Stats counts what the Conn was
// given to send: Sent counts the packets that arrived (those lost to a
// blackout excluded: Stats counts them as Blacked), Dropped those lost to
// the receive Config's Loss, Duplicated and Reordered its copies and
// held-back packets, Delivered the packets handed to a read. It is zero
// for a Conn whose reads are not impaired.
func (c *Conn) ReceiveStats() Stats {
	in := c.in
	if in == nil {
		return Stats{}
	}
	return Stats{
		Sent:       in.arrived.Load(),
		Dropped:    in.dropped.Load(),
		Duplicated: in.duplicated.Load(),
		Reordered:  in.reordered.Load(),
		Delivered:  in.delivered.Load(),
	}
}

// inbound is a duplex Conn's receive impairment. Without delays (queued
// false) it only filters in read; with them, receive reads the socket and
// queues each packet that survives until it is due, and deliver moves due
// packets to ready, where read takes them.
type inbound struct {
	c      *Conn
	cfg    Config
	queued bool

	mu        sync.Mutex // guards the fields below
	rng       *rand.Rand
	pending   packetHeap
	seq       uint64
	deadline  time.Time     // the read deadline (queued only)
	dlChanged chan struct{} // closed, and replaced, when deadline changes

	slots chan struct{}  // one token per original packet queued or ready
	wake  chan struct{}  // cap 1: the earliest due time moved earlier
	ready chan *packet   // due packets, for read
	errs  chan error     // the socket's read errors, other than closed
	wg    sync.WaitGroup // receive and deliver

	arrived, dropped, duplicated, reordered, delivered atomic.Uint64
}

// lose draws whether the packet in hand is lost, and counts it.
func (in *inbound) lose() bool {
	in.arrived.Add(1)
	if in.cfg.Loss == 0 {
		return false
	}
	in.mu.Lock()
	lost := in.rng.Float64() < in.cfg.Loss
	in.mu.Unlock()
	if lost {
		in.dropped.Add(1)
	}
	return lost
}

// read is ReadFromUDPAddrPort through the receive impairment.
func (in *inbound) read(b []byte) (int, netip.AddrPort, error) {
	c := in.c
	if !in.queued {
		for {
			n, addr, err := c.udp.ReadFromUDPAddrPort(b)
			if err != nil {
				return n, addr, err
			}
			if c.blackedOut() || in.lose() {
				continue
			}
			in.delivered.Add(1)
			return n, addr, nil
		}
	}
	for {
		select {
		case <-c.done:
			return 0, netip.AddrPort{}, in.readError(net.ErrClosed)
		default:
		}
		in.mu.Lock()
		dl, changed := in.deadline, in.dlChanged
		in.mu.Unlock()
		var expired <-chan time.Time
		var timer *time.Timer
		if !dl.IsZero() {
			wait := time.Until(dl)
			if wait <= 0 {
				return 0, netip.AddrPort{}, in.readError(os.ErrDeadlineExceeded)
			}
			timer = time.NewTimer(wait)
			expired = timer.C
		}
		select {
		case p := <-in.ready:
			stopTimer(timer)
			n := copy(b, p.data)
			addr := p.addr
			in.delivered.Add(1)
			in.release(p)
			return n, addr, nil
		case err := <-in.errs:
			stopTimer(timer)
			return 0, netip.AddrPort{}, err
		case <-c.done:
			stopTimer(timer)
			return 0, netip.AddrPort{}, in.readError(net.ErrClosed)
		case <-changed:
			stopTimer(timer) // look again with the new deadline
		case <-expired:
			return 0, netip.AddrPort{}, in.readError(os.ErrDeadlineExceeded)
		}
	}
}

func stopTimer(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}

// readError wraps err as net.UDPConn's reads do.
func (in *inbound) readError(err error) error {
	return &net.OpError{Op: "read", Net: "udp", Addr: in.c.udp.LocalAddr(), Err: err}
}

// setDeadline sets the queued reads' deadline and wakes the reads waiting,
// so that they wait for the new one.
func (in *inbound) setDeadline(t time.Time) {
	in.mu.Lock()
	in.deadline = t
	close(in.dlChanged)
	in.dlChanged = make(chan struct{})
	in.mu.Unlock()
}

// receive reads the socket, decides each packet's fate and queues the
// survivors. It takes a queue slot before it reads, so a full queue leaves
// packets in the socket's buffer.
func (in *inbound) receive() {
	defer in.wg.Done()
	c := in.c
	buf := make([]byte, 64<<10)
	for {
		select {
		case in.slots <- struct{}{}:
		case <-c.done:
			return
		}
		n, addr, err := c.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			<-in.slots
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select { // a reader hears of it, once
			case in.errs <- err:
			case <-c.done:
				return
			}
			continue
		}
		if c.blackedOut() || in.lose() {
			<-in.slots
			continue
		}
		p := newPacket(buf[:n], addr)
		in.mu.Lock()
		wake := schedule(&in.cfg, in.rng, &in.pending, &in.seq, &in.reordered, &in.duplicated, p, addr)
		in.mu.Unlock()
		if wake {
			select {
			case in.wake <- struct{}{}:
			default:
			}
		}
	}
}

// deliver moves each queued packet to ready when it is due; one falling
// due while the network is dark is lost on its way.
func (in *inbound) deliver() {
	defer in.wg.Done()
	c := in.c
	deliverDue(&in.mu, &in.pending, in.wake, c.done, in.release, func(p *packet) bool {
		if c.blackedOut() {
			in.release(p)
			return true
		}
		select {
		case in.ready <- p:
			return true
		case <-c.done:
			in.release(p)
			return false
		}
	})
}

// release frees p's queue slot, if it holds one, and recycles it.
func (in *inbound) release(p *packet) {
	if p.slot {
		<-in.slots
	}
	putPacket(p)
}

// close waits for the goroutines, which c.done (closed) and the closed
// socket stop, and discards what waits.
func (in *inbound) close() {
	if !in.queued {
		return
	}
	in.wg.Wait()
	discardDue(&in.mu, &in.pending, in.release)
	for {
		select {
		case p := <-in.ready:
			in.release(p)
		default:
			return
		}
	}
}
