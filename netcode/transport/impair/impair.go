// Package impair wraps a UDP socket so that what it sends suffers a bad
// network: loss, delay, jitter, reordering and duplication, all in user space
// and reproducible from a seed. It stands in for netem, which the test
// machines' kernels lack.
//
// A Conn from New impairs only what it sends; reads pass straight through
// to the wrapped socket. Wrap both ends to impair both directions, or, where
// only one end is yours (a client of a real server), make the Conn with
// NewDuplex, which impairs what it reads as well, with a Config of its own.
// A blackout (Config.Network) darkens both ways in any case: while the
// host's network is dark, packets are lost, those the Conn reads as well as
// those it sends.
//
// WriteTo copies the packet, so the caller may reuse its buffer at once,
// decides the packet's fate with the Conn's random source, and queues it;
// one delivery goroutine owned by the Conn writes each packet to the
// socket when it is due. Errors the socket reports for a queued packet are
// lost, as they would be on a real network: the packet is simply not
// counted as Delivered. With a zero Config, WriteTo writes straight to the
// socket with no queue and no goroutine hop.
//
// All methods may be called concurrently. At most 4096 packets (not counting
// duplicates) wait at once; beyond that WriteTo blocks, as a full socket
// buffer would, until deliveries make room, the write deadline passes, or the
// Conn closes. After Close, reads and writes return an error that satisfies
// errors.Is(err, net.ErrClosed), and no goroutine of the Conn is left running.
//
// A Proxy puts the same impairment between unmodified programs: a UDP relay
// in front of a server, with a Conn on each direction, so a real client and
// server (or a load test) run over a bad path. ParseProfile reads the
// "rtt=150ms,jitter=10ms,loss=5%" syntax that tools and tests share.
//
// A Network is one host's network with its blackouts (Blackout, and
// ParseBlackout for "3s@10s" or "2s@5s/5s"): windows in which it carries
// nothing. Every Conn (Config.Network), StreamConn and TCPProxy
// (TCPConfig.Network) given the same Network goes dark together, sockets
// opened during a window included, as a reconnecting client's are.
package impair

import (
	"container/heap"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	// bufSize is the size of the pooled packet buffers. Larger packets get a
	// buffer of their own.
	bufSize = 2048
	// maxInFlight caps the packets waiting for delivery, so a sender that
	// outruns the configured delay slows down instead of growing memory.
	// Duplicated copies do not count against it.
	maxInFlight = 4096
	// minHoldBack is how long a reordered packet is held back when Delay and
	// Jitter are both zero, so that Reorder on its own still reorders.
	minHoldBack = time.Millisecond
	// maxDuration bounds Delay and Jitter so that sums and random ranges
	// cannot overflow.
	maxDuration = time.Duration(math.MaxInt64 / 4)
	// seedMix derives the PCG's second seed word from Config.Seed.
	seedMix = 0x9e3779b97f4a7c15
)

// Config describes the impairment applied to packets a Conn sends. Zero
// values mean no impairment of that kind; the zero Config passes packets
// through untouched.
type Config struct {
	// Seed seeds the random source (PCG with Seed and Seed^0x9e3779b97f4a7c15),
	// so the same Seed, Config and sequence of writes give the same drops,
	// delays and duplicates.
	Seed uint64
	// Loss is the probability, from 0 to 1, that a packet is dropped.
	Loss float64
	// Delay is added to every packet.
	Delay time.Duration
	// Jitter spreads the delay: each packet waits Delay plus a uniform random
	// duration in [-Jitter, +Jitter], never less than zero.
	Jitter time.Duration
	// Reorder is the probability, from 0 to 1, that a packet is held back an
	// extra Delay+Jitter (1 ms if both are zero), so later packets overtake it.
	Reorder float64
	// Duplicate is the probability, from 0 to 1, that a packet is sent twice.
	// The copy gets its own random delay.
	Duplicate float64
	// Network, if set, is the network of the host the Conn belongs to:
	// while it is dark (a Blackout), every packet is lost, sent or received,
	// and so is a delayed packet that falls due then. Share one Network
	// between the sockets of a host, so that a socket opened during a
	// blackout is dark too.
	Network *Network
}

// normalize clamps probabilities to [0, 1] (NaN to 0) and durations to
// [0, maxDuration].
func (cfg Config) normalize() Config {
	cfg.Loss = clamp01(cfg.Loss)
	cfg.Reorder = clamp01(cfg.Reorder)
	cfg.Duplicate = clamp01(cfg.Duplicate)
	cfg.Delay = min(max(cfg.Delay, 0), maxDuration)
	cfg.Jitter = min(max(cfg.Jitter, 0), maxDuration)
	return cfg
}

// impairs reports whether cfg changes anything; Seed alone does not.
func (cfg Config) impairs() bool {
	return cfg.Loss > 0 || cfg.Delay > 0 || cfg.Jitter > 0 || cfg.Reorder > 0 || cfg.Duplicate > 0
}

func clamp01(p float64) float64 {
	if !(p > 0) { // also catches NaN
		return 0
	}
	return min(p, 1)
}

// Stats counts what a Conn did with the packets it was given.
type Stats struct {
	// Sent counts packets WriteTo accepted, dropped ones included.
	Sent uint64
	// Dropped counts packets lost to Config.Loss.
	Dropped uint64
	// Duplicated counts extra copies queued by Config.Duplicate.
	Duplicated uint64
	// Reordered counts packets held back by Config.Reorder.
	Reordered uint64
	// Blacked counts packets lost to a blackout (Config.Network), either
	// way: sent, falling due, or received while the network was dark.
	// Those sent are counted in Sent too.
	Blacked uint64
	// Delivered counts packets, copies included, that the wrapped socket
	// accepted. Packets lost to a blackout on their way, still waiting,
	// discarded by Close or refused by the socket make up the difference
	// from Sent-Dropped+Duplicated.
	Delivered uint64
}

// Conn wraps a *net.UDPConn and impairs what it sends. See the package doc.
type Conn struct {
	udp *net.UDPConn

	// passthrough mirrors !cfg.impairs() so the zero-Config path takes no lock.
	passthrough atomic.Bool
	// network mirrors cfg.Network, for the same reason and for reads.
	network atomic.Pointer[Network]
	// writeDeadline is the write deadline in Unix nanoseconds, 0 for none.
	writeDeadline atomic.Int64

	sent, dropped, duplicated, reordered, delivered, blacked atomic.Uint64

	mu      sync.Mutex // guards the fields below
	cfg     Config
	pcg     *rand.PCG
	rng     *rand.Rand
	pending packetHeap
	seq     uint64 // orders packets with equal due times
	closed  bool

	slots  chan struct{} // one token per queued original packet
	wake   chan struct{} // cap 1: the earliest due time moved earlier
	done   chan struct{} // closed by Close
	exited chan struct{} // closed when the delivery goroutine returns

	closeOnce func() error

	// in impairs what the Conn reads; nil unless made by NewDuplex with a
	// receive Config that impairs.
	in *inbound
}

var _ net.PacketConn = (*Conn)(nil)

// New wraps c, which should be unconnected (as from net.ListenUDP), and
// starts the delivery goroutine. The Conn owns c from now on: Close closes it.
func New(c *net.UDPConn, cfg Config) *Conn {
	cfg = cfg.normalize()
	pcg := rand.NewPCG(cfg.Seed, cfg.Seed^seedMix)
	conn := &Conn{
		udp:    c,
		cfg:    cfg,
		pcg:    pcg,
		rng:    rand.New(pcg),
		slots:  make(chan struct{}, maxInFlight),
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	conn.passthrough.Store(!cfg.impairs())
	conn.network.Store(cfg.Network)
	conn.closeOnce = sync.OnceValue(conn.close)
	go conn.run()
	return conn
}

// SetConfig changes the impairment for packets written from now on; packets
// already queued keep their fate. The random source is reseeded only when
// Seed changes.
func (c *Conn) SetConfig(cfg Config) {
	cfg = cfg.normalize()
	c.mu.Lock()
	defer c.mu.Unlock()
	if cfg.Seed != c.cfg.Seed {
		c.pcg.Seed(cfg.Seed, cfg.Seed^seedMix)
	}
	c.cfg = cfg
	c.passthrough.Store(!cfg.impairs())
	c.network.Store(cfg.Network)
}

// Stats returns the counters so far.
func (c *Conn) Stats() Stats {
	return Stats{
		Sent:       c.sent.Load(),
		Dropped:    c.dropped.Load(),
		Duplicated: c.duplicated.Load(),
		Reordered:  c.reordered.Load(),
		Blacked:    c.blacked.Load(),
		Delivered:  c.delivered.Load(),
	}
}

// ReadFrom reads from the wrapped socket, skipping the packets that arrive
// while the network is dark; on a Conn from NewDuplex, through the receive
// impairment.
func (c *Conn) ReadFrom(b []byte) (int, net.Addr, error) {
	if c.in != nil {
		n, ap, err := c.in.read(b)
		if err != nil {
			return n, nil, err
		}
		return n, net.UDPAddrFromAddrPort(ap), nil
	}
	for {
		n, addr, err := c.udp.ReadFrom(b)
		if err != nil || !c.blackedOut() {
			return n, addr, err
		}
	}
}

// ReadFromUDPAddrPort reads from the wrapped socket, like ReadFrom.
func (c *Conn) ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error) {
	if c.in != nil {
		return c.in.read(b)
	}
	for {
		n, addr, err := c.udp.ReadFromUDPAddrPort(b)
		if err != nil || !c.blackedOut() {
			return n, addr, err
		}
	}
}

// blackedOut reports whether the network is dark now, and if so counts the
// packet in hand as lost to it.
func (c *Conn) blackedOut() bool {
	if !c.network.Load().Dark(time.Now()) {
		return false
	}
	c.blacked.Add(1)
	return true
}

// WriteTo sends b to addr, which must be a *net.UDPAddr, through the
// impairment. It returns len(b), nil for a packet the impairment drops.
func (c *Conn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if c.passthrough.Load() {
		if c.deadlinePassed() {
			return 0, c.writeError(addr, netip.AddrPort{}, os.ErrDeadlineExceeded)
		}
		if c.blackedOut() {
			c.sent.Add(1)
			return len(b), nil
		}
		return c.deliverNow(c.udp.WriteTo(b, addr))
	}
	ua, ok := addr.(*net.UDPAddr)
	if !ok || ua == nil {
		return 0, c.writeError(addr, netip.AddrPort{}, syscall.EINVAL)
	}
	return c.enqueue(b, ua.AddrPort(), addr)
}

// WriteToUDPAddrPort sends b to addr through the impairment, like WriteTo.
func (c *Conn) WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	if c.passthrough.Load() {
		if c.deadlinePassed() {
			return 0, c.writeError(nil, addr, os.ErrDeadlineExceeded)
		}
		if c.blackedOut() {
			c.sent.Add(1)
			return len(b), nil
		}
		return c.deliverNow(c.udp.WriteToUDPAddrPort(b, addr))
	}
	return c.enqueue(b, addr, nil)
}

// deliverNow counts the outcome of a pass-through write.
func (c *Conn) deliverNow(n int, err error) (int, error) {
	if err == nil {
		c.sent.Add(1)
		c.delivered.Add(1)
	}
	return n, err
}

// enqueue decides b's fate and queues it, and its copy if duplicated. addr is
// what errors report; nil means ap.
func (c *Conn) enqueue(b []byte, ap netip.AddrPort, addr net.Addr) (int, error) {
	if !ap.Addr().IsValid() {
		return 0, c.writeError(addr, ap, syscall.EINVAL)
	}
	if c.deadlinePassed() {
		return 0, c.writeError(addr, ap, os.ErrDeadlineExceeded)
	}
	if err := c.acquire(c.writeDeadline.Load()); err != nil {
		return 0, c.writeError(addr, ap, err)
	}
	p := newPacket(b, ap) // copy outside the lock

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		<-c.slots
		putPacket(p)
		return 0, c.writeError(addr, ap, net.ErrClosed)
	}
	c.sent.Add(1)
	cfg := &c.cfg
	if c.blackedOut() {
		c.mu.Unlock()
		<-c.slots
		putPacket(p)
		return len(b), nil
	}
	if cfg.Loss > 0 && c.rng.Float64() < cfg.Loss {
		c.dropped.Add(1)
		c.mu.Unlock()
		<-c.slots
		putPacket(p)
		return len(b), nil
	}
	wake := schedule(cfg, c.rng, &c.pending, &c.seq, &c.reordered, &c.duplicated, p, ap)
	c.mu.Unlock()

	if wake {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
	return len(b), nil
}

// schedule draws the fate of p, a packet not lost, under cfg from rng: its
// delay, longer when it is held back to be reordered, and whether a copy of
// it follows after a delay of its own. It queues p (and the copy) in h,
// counts them in reordered and duplicated, and reports whether the earliest
// packet changed. Both directions draw in this order, so that a seed replays
// the same run. The queue's lock must be held.
func schedule(cfg *Config, rng *rand.Rand, h *packetHeap, seq *uint64, reordered, duplicated *atomic.Uint64, p *packet, addr netip.AddrPort) (wake bool) {
	now := time.Now()
	d := drawDelay(cfg, rng)
	if cfg.Reorder > 0 && rng.Float64() < cfg.Reorder {
		hold := cfg.Delay + cfg.Jitter
		if hold == 0 {
			hold = minHoldBack
		}
		d += hold
		reordered.Add(1)
	}
	p.due, p.slot = now.Add(d), true
	wake = pushDue(h, seq, p)
	if cfg.Duplicate > 0 && rng.Float64() < cfg.Duplicate {
		q := newPacket(p.data, addr)
		q.due = now.Add(drawDelay(cfg, rng))
		wake = pushDue(h, seq, q) || wake
		duplicated.Add(1)
	}
	return wake
}

// drawDelay draws one packet's delay under cfg from rng.
func drawDelay(cfg *Config, rng *rand.Rand) time.Duration {
	d := cfg.Delay
	if j := cfg.Jitter; j > 0 {
		d += time.Duration(rng.Int64N(2*int64(j)+1)) - j
	}
	return max(d, 0)
}

// pushDue queues p in h, numbered after the last (seq), and reports whether
// it is now the earliest: the delivery goroutine must wake for it.
func pushDue(h *packetHeap, seq *uint64, p *packet) bool {
	*seq++
	p.seq = *seq
	heap.Push(h, p)
	return (*h)[0] == p
}

// discardDue frees every packet still waiting in h (under mu).
func discardDue(mu *sync.Mutex, h *packetHeap, release func(*packet)) {
	mu.Lock()
	defer mu.Unlock()
	for _, p := range *h {
		release(p)
	}
	clear(*h)
	*h = (*h)[:0]
}

// acquire takes a queue slot, waiting for one if the queue is full.
func (c *Conn) acquire(deadline int64) error {
	select {
	case c.slots <- struct{}{}:
		return nil
	default:
	}
	var timeout <-chan time.Time
	if deadline != 0 {
		t := time.NewTimer(time.Until(time.Unix(0, deadline)))
		defer t.Stop()
		timeout = t.C
	}
	select {
	case c.slots <- struct{}{}:
		return nil
	case <-c.done:
		return net.ErrClosed
	case <-timeout:
		return os.ErrDeadlineExceeded
	}
}

// run is the delivery goroutine: it writes each queued packet when it is due.
func (c *Conn) run() {
	defer close(c.exited)
	deliverDue(&c.mu, &c.pending, c.wake, c.done, c.release, func(p *packet) bool {
		select {
		case <-c.done:
			c.release(p)
			return false
		default:
		}
		if !c.blackedOut() { // else lost in the dark on its way
			if _, err := c.udp.WriteToUDPAddrPort(p.data, p.addr); err == nil {
				c.delivered.Add(1)
			}
		}
		c.release(p)
		return true
	})
}

// deliverDue is a delivery goroutine's loop, the sending side's and the
// receiving side's: it takes the packets of pending that are due (under
// mu), hands each to deliver outside the lock, so that producers are not
// held up, and sleeps until the next is due or wake says an earlier one
// came. It ends once done is closed or deliver reports false. deliver owns
// the packet it is given; those taken but not given when it ends are
// freed with release.
func deliverDue(mu *sync.Mutex, pending *packetHeap, wake, done <-chan struct{}, release func(*packet), deliver func(*packet) bool) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var batch []*packet
	for {
		mu.Lock()
		now := time.Now()
		for len(*pending) > 0 && !(*pending)[0].due.After(now) {
			batch = append(batch, heap.Pop(pending).(*packet))
		}
		wait := time.Duration(-1)
		if len(*pending) > 0 {
			wait = (*pending)[0].due.Sub(now)
		}
		mu.Unlock()

		if len(batch) > 0 {
			for i, p := range batch {
				batch[i] = nil
				if !deliver(p) {
					for _, q := range batch[i+1:] {
						release(q)
					}
					return
				}
			}
			batch = batch[:0]
			continue // more may have fallen due meanwhile
		}

		if wait >= 0 {
			timer.Reset(wait)
		}
		select {
		case <-done:
			timer.Stop()
			return
		case <-wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// release frees p's queue slot, if it holds one, and recycles it.
func (c *Conn) release(p *packet) {
	if p.slot {
		<-c.slots
	}
	putPacket(p)
}

// Close discards the packets still waiting, stops the delivery goroutine and
// waits for it, and closes the wrapped socket. Later calls return the first
// call's result.
func (c *Conn) Close() error {
	return c.closeOnce()
}

func (c *Conn) close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	close(c.done)
	// Closing the socket before waiting unblocks a delivery write stuck on a
	// full socket buffer; the goroutine then notices done.
	err := c.udp.Close()
	<-c.exited
	if c.in != nil {
		c.in.close()
	}
	discardDue(&c.mu, &c.pending, c.release)
	return err
}

// SetReadBuffer sets the wrapped socket's receive buffer size, as
// net.UDPConn's does (quic-go asks for a large one).
func (c *Conn) SetReadBuffer(bytes int) error { return c.udp.SetReadBuffer(bytes) }

// SetWriteBuffer sets the wrapped socket's send buffer size.
func (c *Conn) SetWriteBuffer(bytes int) error { return c.udp.SetWriteBuffer(bytes) }

// LocalAddr returns the wrapped socket's local address.
func (c *Conn) LocalAddr() net.Addr { return c.udp.LocalAddr() }

// SetDeadline sets the read and write deadlines, as SetReadDeadline and
// SetWriteDeadline do.
func (c *Conn) SetDeadline(t time.Time) error {
	c.storeWriteDeadline(t)
	return c.SetReadDeadline(t)
}

// SetReadDeadline sets the wrapped socket's read deadline; on a Conn whose
// reads wait in a receive queue (NewDuplex), the deadline of that wait.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if c.in != nil && c.in.queued {
		c.in.setDeadline(t)
		return nil
	}
	return c.udp.SetReadDeadline(t)
}

// SetWriteDeadline sets the deadline for WriteTo calls: once it has passed
// they fail with an error that satisfies errors.Is(err,
// os.ErrDeadlineExceeded). It bounds only the hand-over to the Conn, never
// the delayed deliveries, so it is not set on the wrapped socket; a
// pass-through write already blocked in the kernel is not cut short by it.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.storeWriteDeadline(t)
	return nil
}

func (c *Conn) storeWriteDeadline(t time.Time) {
	if t.IsZero() {
		c.writeDeadline.Store(0)
		return
	}
	c.writeDeadline.Store(max(t.UnixNano(), 1))
}

// deadlinePassed reports whether the write deadline has passed.
func (c *Conn) deadlinePassed() bool {
	dl := c.writeDeadline.Load()
	return dl != 0 && time.Now().UnixNano() >= dl
}

// writeError wraps err as net.UDPConn's writes do. The error names addr, or
// ap if addr is nil and ap is valid.
func (c *Conn) writeError(addr net.Addr, ap netip.AddrPort, err error) error {
	if addr == nil && ap.IsValid() {
		addr = net.UDPAddrFromAddrPort(ap)
	}
	return &net.OpError{Op: "write", Net: "udp", Source: c.udp.LocalAddr(), Addr: addr, Err: err}
}

// packet is one queued datagram. Small ones live in buf, which is pooled.
type packet struct {
	due  time.Time
	seq  uint64
	addr netip.AddrPort
	slot bool   // holds a slot in Conn.slots
	data []byte // buf[:n], or its own allocation when larger than buf
	buf  [bufSize]byte
}

var packetPool = sync.Pool{New: func() any { return new(packet) }}

// newPacket returns a pooled packet holding a copy of b.
func newPacket(b []byte, addr netip.AddrPort) *packet {
	p := packetPool.Get().(*packet)
	if len(b) <= len(p.buf) {
		p.data = p.buf[:len(b)]
	} else {
		p.data = make([]byte, len(b))
	}
	copy(p.data, b)
	p.addr = addr
	return p
}

func putPacket(p *packet) {
	p.data, p.slot, p.due, p.seq = nil, false, time.Time{}, 0
	packetPool.Put(p)
}

// packetHeap is a min-heap of packets by due time, then queueing order.
type packetHeap []*packet

func (h packetHeap) Len() int { return len(h) }
func (h packetHeap) Less(i, j int) bool {
	if h[i].due.Equal(h[j].due) {
		return h[i].seq < h[j].seq
	}
	return h[i].due.Before(h[j].due)
}
func (h packetHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *packetHeap) Push(x any)   { *h = append(*h, x.(*packet)) }
func (h *packetHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return p
}
