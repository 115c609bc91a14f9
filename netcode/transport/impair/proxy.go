package impair

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// DefaultMaxClients is how many client addresses a Proxy maps at once
	// when ProxyConfig.MaxClients is zero. Each costs an upstream socket
	// and two goroutines.
	DefaultMaxClients = 4096
	// DefaultIdleTimeout is how long a client's mapping lives without a
	// packet either way when ProxyConfig.IdleTimeout is zero.
	DefaultIdleTimeout = 30 * time.Second
	// MaxProxyPacket is the largest datagram a Proxy forwards, in bytes;
	// larger ones are dropped and counted as Oversize. QUIC and KCP stay
	// well under it.
	MaxProxyPacket = bufSize
)

// ErrProxyClosed is what Close returns after the first call. It satisfies
// errors.Is(err, net.ErrClosed).
var ErrProxyClosed = fmt.Errorf("impair: proxy closed: %w", net.ErrClosed)

// ProxyConfig configures a Proxy. Zero fields take the documented defaults,
// except Upstream, which is required.
type ProxyConfig struct {
	// Listen is the UDP address clients send to. Empty means "127.0.0.1:0":
	// loopback, any free port (see Proxy.Addr).
	Listen string
	// Upstream is the UDP address (host:port) of the server packets go to.
	Upstream string
	// ToServer impairs what clients send, on its way to Upstream.
	ToServer Config
	// ToClient impairs what the server sends back, on its way to the client.
	ToClient Config
	// MaxClients caps the client addresses mapped at once; packets from a
	// new address beyond it are dropped and counted as Refused. Zero means
	// DefaultMaxClients (4096).
	MaxClients int
	// IdleTimeout expires a client's mapping, closing its upstream socket,
	// after this long without a packet either way; a later packet from the
	// address opens a new mapping with a new upstream port. Zero means
	// DefaultIdleTimeout (30 s).
	IdleTimeout time.Duration
}

// DirectionStats counts one direction of a Proxy's traffic.
type DirectionStats struct {
	// Packets and Bytes count the datagrams the Proxy took in to forward
	// this way (before the impairment; Refused and Oversize ones excluded).
	Packets, Bytes uint64
	// Dropped counts those lost to the direction's Config.Loss.
	Dropped uint64
	// Delivered counts datagrams, duplicates included, written on to the
	// far side.
	Delivered uint64
}

// ProxyStats are a Proxy's counters since it started.
type ProxyStats struct {
	ToServer, ToClient DirectionStats
	// Clients is how many client addresses are mapped now; ClientsOpened
	// how many mappings were ever opened, ClientsExpired how many of them
	// IdleTimeout closed.
	Clients                       int
	ClientsOpened, ClientsExpired uint64
	// Refused counts packets from new clients dropped at MaxClients (or
	// because no upstream socket could be opened for them).
	Refused uint64
	// Oversize counts datagrams over MaxProxyPacket bytes, dropped.
	Oversize uint64
}

// Proxy is a UDP relay that puts a bad network between clients and a
// server: it listens on one address and forwards each client's packets to
// the upstream server from an upstream socket of the client's own, so the
// server sees a distinct peer per client (a NAT, not a mixer), and relays
// the server's answers back from the listening address.
//
// Client to server packets are impaired by ProxyConfig.ToServer: every
// client's upstream socket is wrapped in a Conn of its own. Server to client
// packets are impaired by ProxyConfig.ToClient: the listening socket is one
// Conn shared by all clients, so its 4096-packet queue bounds what waits
// in that direction. Each socket draws its own seed from its direction's
// Config.Seed (mixed with the direction and the client's number, in order
// of first packet), so two clients' losses are independent, yet a run with
// the same seeds and the same order of clients repeats.
//
// The Proxy runs one goroutine reading the listening socket, one per
// client reading its upstream socket, one that expires idle clients, and
// each Conn's delivery goroutine. A reader that finds its Conn's queue
// full waits, as a full router queue would make its sender wait, and the
// kernel drops what overflows meanwhile. All methods may be called
// concurrently. Close stops every goroutine and closes every socket; the
// Stats stay readable after it.
type Proxy struct {
	cfg      ProxyConfig
	upstream netip.AddrPort
	upLocal  *net.UDPAddr // what upstream sockets bind to
	down     *Conn        // the listening socket; impairs server→client

	mu      sync.Mutex // guards the fields below
	clients map[netip.AddrPort]*proxyClient
	closed  bool
	opened  uint64    // clients ever mapped; numbers their seeds
	retired [2]uint64 // closed upstream sockets' Dropped and Delivered

	toServerPkts, toServerBytes atomic.Uint64
	toClientPkts, toClientBytes atomic.Uint64
	refused, oversize, expired  atomic.Uint64

	wg        sync.WaitGroup
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// proxyClient is one client address's mapping.
type proxyClient struct {
	addr netip.AddrPort
	up   *Conn        // this client's upstream socket; impairs client→server
	last atomic.Int64 // Unix nanoseconds of the latest packet either way
}

// Seed mixing: each direction and client number gives a distinct stream.
const (
	seedToServer = 0x746f736572766572 // "toserver"
	seedToClient = 0x746f636c69656e74 // "toclient"
)

// splitmix64 is one step of SplitMix64, a good 64-bit mixer.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func socketSeed(base, dir, n uint64) uint64 {
	return splitmix64(base ^ splitmix64(dir+n))
}

// NewProxy opens the listening socket and starts relaying.
func NewProxy(cfg ProxyConfig) (*Proxy, error) {
	if cfg.Upstream == "" {
		return nil, errors.New("impair: proxy: no upstream address")
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.MaxClients <= 0 {
		cfg.MaxClients = DefaultMaxClients
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	ua, err := net.ResolveUDPAddr("udp", cfg.Upstream)
	if err != nil {
		return nil, fmt.Errorf("impair: proxy upstream: %w", err)
	}
	upstream := unmap(ua.AddrPort())
	if !upstream.Addr().IsValid() || upstream.Addr().IsUnspecified() || upstream.Port() == 0 {
		return nil, fmt.Errorf("impair: proxy upstream %q: need a host and a port", cfg.Upstream)
	}
	la, err := net.ResolveUDPAddr("udp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("impair: proxy listen: %w", err)
	}
	ln, err := net.ListenUDP("udp", la)
	if err != nil {
		return nil, fmt.Errorf("impair: proxy listen: %w", err)
	}
	// Upstream sockets bind to loopback for a loopback server, so the
	// proxy's traffic stays on the host; otherwise to any address.
	upLocal := &net.UDPAddr{}
	if upstream.Addr().IsLoopback() {
		upLocal.IP = upstream.Addr().AsSlice()
	}
	down := cfg.ToClient
	down.Seed = socketSeed(cfg.ToClient.Seed, seedToClient, 0)
	p := &Proxy{
		cfg:      cfg,
		upstream: upstream,
		upLocal:  upLocal,
		down:     New(ln, down),
		clients:  make(map[netip.AddrPort]*proxyClient),
		done:     make(chan struct{}),
	}
	p.wg.Add(2)
	go p.listen()
	go p.expire()
	return p, nil
}

// Addr is the address clients send to.
func (p *Proxy) Addr() net.Addr { return p.down.LocalAddr() }

// Stats returns the counters so far.
func (p *Proxy) Stats() ProxyStats {
	down := p.down.Stats()
	st := ProxyStats{
		ToServer: DirectionStats{Packets: p.toServerPkts.Load(), Bytes: p.toServerBytes.Load()},
		ToClient: DirectionStats{
			Packets: p.toClientPkts.Load(), Bytes: p.toClientBytes.Load(),
			Dropped: down.Dropped, Delivered: down.Delivered,
		},
		ClientsExpired: p.expired.Load(),
		Refused:        p.refused.Load(),
		Oversize:       p.oversize.Load(),
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	st.Clients = len(p.clients)
	st.ClientsOpened = p.opened
	st.ToServer.Dropped, st.ToServer.Delivered = p.retired[0], p.retired[1]
	for _, pc := range p.clients {
		up := pc.up.Stats()
		st.ToServer.Dropped += up.Dropped
		st.ToServer.Delivered += up.Delivered
	}
	return st
}

// Close stops relaying: it closes every socket, discarding the packets
// still delayed, and waits for the Proxy's goroutines. Later calls return
// ErrProxyClosed.
func (p *Proxy) Close() error {
	first := false
	p.closeOnce.Do(func() {
		first = true
		p.closeErr = p.close()
	})
	if !first {
		return ErrProxyClosed
	}
	return p.closeErr
}

func (p *Proxy) close() error {
	p.mu.Lock()
	p.closed = true
	clients := p.clients
	p.clients = make(map[netip.AddrPort]*proxyClient)
	p.mu.Unlock()
	close(p.done)
	// Closing the sockets unblocks the readers and any writer waiting for
	// a queue slot.
	err := p.down.Close()
	for _, pc := range clients {
		p.retire(pc)
	}
	p.wg.Wait()
	return err
}

// Rebind drops every client's mapping at once, as a NAT that reboots or
// rebinds does: the next packet from each client goes out from a new
// upstream port, and what the server still sends to the old one is lost.
// It returns how many mappings it dropped.
func (p *Proxy) Rebind() int {
	p.mu.Lock()
	clients := p.clients
	p.clients = make(map[netip.AddrPort]*proxyClient)
	p.mu.Unlock()
	for _, pc := range clients {
		p.retire(pc)
	}
	return len(clients)
}

// retire closes a client's upstream socket and keeps its counters.
func (p *Proxy) retire(pc *proxyClient) {
	_ = pc.up.Close()
	st := pc.up.Stats()
	p.mu.Lock()
	p.retired[0] += st.Dropped
	p.retired[1] += st.Delivered
	p.mu.Unlock()
}

// client returns from's mapping, opening one if there is room, or nil.
func (p *Proxy) client(from netip.AddrPort) *proxyClient {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	if pc := p.clients[from]; pc != nil {
		return pc
	}
	if len(p.clients) >= p.cfg.MaxClients {
		p.refused.Add(1)
		return nil
	}
	udp, err := net.ListenUDP("udp", p.upLocal)
	if err != nil {
		p.refused.Add(1)
		return nil
	}
	p.opened++
	up := p.cfg.ToServer
	up.Seed = socketSeed(p.cfg.ToServer.Seed, seedToServer, p.opened)
	pc := &proxyClient{addr: from, up: New(udp, up)}
	pc.last.Store(time.Now().UnixNano())
	p.clients[from] = pc
	p.wg.Add(1) // under mu, before closed is set: Close's Wait sees it
	go p.pump(pc)
	return pc
}

// listen reads what clients send and forwards it upstream.
func (p *Proxy) listen() {
	defer p.wg.Done()
	buf := make([]byte, MaxProxyPacket+1) // one spare byte shows truncation
	for {
		n, from, err := p.down.ReadFromUDPAddrPort(buf)
		if err != nil {
			if !p.pause(err) {
				return
			}
			continue
		}
		if n > MaxProxyPacket {
			p.oversize.Add(1)
			continue
		}
		from = unmap(from)
		for range 2 { // a second try if the mapping expired meanwhile
			pc := p.client(from)
			if pc == nil {
				break
			}
			pc.last.Store(time.Now().UnixNano())
			_, err := pc.up.WriteToUDPAddrPort(buf[:n], p.upstream)
			if !errors.Is(err, net.ErrClosed) {
				p.toServerPkts.Add(1)
				p.toServerBytes.Add(uint64(n))
				break
			}
		}
	}
}

// pump reads what the server sends to one client's upstream socket and
// relays it to the client.
func (p *Proxy) pump(pc *proxyClient) {
	defer p.wg.Done()
	buf := make([]byte, MaxProxyPacket+1)
	for {
		n, from, err := pc.up.ReadFromUDPAddrPort(buf)
		if err != nil {
			if !p.pause(err) {
				return
			}
			continue
		}
		if unmap(from) != p.upstream {
			continue // not from the server: a NAT drops it
		}
		if n > MaxProxyPacket {
			p.oversize.Add(1)
			continue
		}
		pc.last.Store(time.Now().UnixNano())
		p.toClientPkts.Add(1)
		p.toClientBytes.Add(uint64(n))
		if _, err := p.down.WriteToUDPAddrPort(buf[:n], pc.addr); errors.Is(err, net.ErrClosed) {
			return
		}
	}
}

// pause handles a read error: false if the socket is closed, else it waits
// a moment (so a persistent error cannot spin) and returns true.
func (p *Proxy) pause(err error) bool {
	if errors.Is(err, net.ErrClosed) {
		return false
	}
	t := time.NewTimer(time.Millisecond)
	defer t.Stop()
	select {
	case <-p.done:
		return false
	case <-t.C:
		return true
	}
}

// expire closes the mappings idle for longer than IdleTimeout, checking a
// few times per IdleTimeout.
func (p *Proxy) expire() {
	defer p.wg.Done()
	t := time.NewTicker(max(p.cfg.IdleTimeout/4, time.Millisecond))
	defer t.Stop()
	var idle []*proxyClient
	for {
		select {
		case <-p.done:
			return
		case now := <-t.C:
			cutoff := now.Add(-p.cfg.IdleTimeout).UnixNano()
			p.mu.Lock()
			for addr, pc := range p.clients {
				if pc.last.Load() < cutoff {
					delete(p.clients, addr)
					idle = append(idle, pc)
				}
			}
			p.mu.Unlock()
			for i, pc := range idle {
				p.retire(pc)
				p.expired.Add(1)
				idle[i] = nil
			}
			idle = idle[:0]
		}
	}
}

func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
