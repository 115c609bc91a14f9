package impair

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"time"
)

// TCPConfig configures a TCPProxy. Zero fields take the documented
// defaults, except Upstream, which is required.
type TCPConfig struct {
	// Listen is the TCP address clients connect to. Empty means
	// "127.0.0.1:0".
	Listen string
	// Upstream is the TCP address (host:port) each connection is forwarded
	// to.
	Upstream string
	// Rate caps each direction of each connection, in bytes per second.
	// Zero means no cap.
	Rate int
	// Buffer is the proxy's receive buffer per socket, in bytes (SO_RCVBUF,
	// which Linux doubles): what a bottleneck holds beyond the sender's
	// own socket. Zero means 4 KiB.
	Buffer int
	// MSS is the TCP segment size on the proxy's sockets (TCP_MAXSEG), so
	// that both ends see an Internet path's segments instead of
	// loopback's 64 KiB ones. Zero means 1400; negative leaves the
	// system's.
	MSS int
	// Network, if set, darkens every connection in its blackouts: the
	// proxy forwards nothing either way while it is dark (what it has read
	// waits, then the sockets' buffers fill), so the connections stall as
	// over a dead path and go on, with nothing lost, once it lights. Nil
	// means never dark.
	Network *Network
}

// TCPProxy forwards TCP connections to Upstream at a capped rate each way,
// with a small buffer, as a slow access link does: tests use it to see how
// a stream transport behaves when the path is slower than its traffic. With
// a Network it also stalls in blackouts.
// Each connection costs three goroutines, one per direction and one that
// closes both sockets once both directions ended (or the proxy closed).
type TCPProxy struct {
	cfg TCPConfig
	ln  net.Listener

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	done   chan struct{} // closed by Close: ends the waits in the dark
	wg     sync.WaitGroup
}

// NewTCPProxy listens on cfg.Listen and starts forwarding.
func NewTCPProxy(cfg TCPConfig) (*TCPProxy, error) {
	if cfg.Upstream == "" {
		return nil, errors.New("impair: TCP proxy needs an upstream address")
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = 4 << 10
	}
	if cfg.MSS == 0 {
		cfg.MSS = 1400
	}
	lc := net.ListenConfig{Control: cfg.control} // accepted sockets inherit both options
	ln, err := lc.Listen(context.Background(), "tcp", cfg.Listen)
	if err != nil {
		return nil, err
	}
	p := &TCPProxy{cfg: cfg, ln: ln, conns: make(map[net.Conn]struct{}), done: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// control sets the receive buffer and the segment size on a socket before
// it connects or listens.
func (c *TCPConfig) control(_, _ string, rc syscall.RawConn) error {
	var err error
	cerr := rc.Control(func(fd uintptr) {
		err = setSockopts(fd, c.Buffer, c.MSS)
	})
	if cerr != nil {
		return cerr
	}
	return err
}

// Addr is the address clients connect to.
func (p *TCPProxy) Addr() net.Addr { return p.ln.Addr() }

// Close stops the proxy, closes every connection and waits for its
// goroutines.
func (p *TCPProxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrProxyClosed
	}
	p.closed = true
	close(p.done)
	err := p.ln.Close()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

// Reset aborts every connection through the proxy with a TCP reset, both
// ways, as a NAT that rebinds does to a TCP flow: its mapping is gone, so
// the next segment meets a reset. New connections go on. It returns how
// many sockets it reset (two per connection).
func (p *TCPProxy) Reset() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns { // all first: a pipe that sees one end go closes the other
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // a close sends RST, not FIN
		}
	}
	for c := range p.conns {
		_ = c.Close()
	}
	return len(p.conns)
}

// track registers c, or closes it once the proxy is closed.
func (p *TCPProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *TCPProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *TCPProxy) accept() {
	defer p.wg.Done()
	d := net.Dialer{Control: p.cfg.control, Timeout: 5 * time.Second}
	for {
		down, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(down) {
			return
		}
		up, err := d.Dial("tcp", p.cfg.Upstream)
		if err != nil || !p.track(up) {
			p.untrack(down)
			continue
		}
		p.wg.Add(3)
		var open sync.WaitGroup // both directions: then both sockets close
		open.Add(2)
		go func() {
			defer p.wg.Done()
			open.Wait()
			p.untrack(up)
			p.untrack(down)
		}()
		go p.pipe(up, down, &open)
		go p.pipe(down, up, &open)
	}
}

// pipe forwards src to dst at the configured rate, holding each chunk
// while the network is dark. At src's end it ends
// dst's sending side and returns, leaving the other direction running; on
// an error it closes both.
func (p *TCPProxy) pipe(dst, src net.Conn, open *sync.WaitGroup) {
	defer p.wg.Done()
	defer open.Done()
	// Chunks of about a millisecond's worth at the rate, so the pace is
	// smooth.
	chunk := 32 << 10
	if p.cfg.Rate > 0 {
		chunk = min(max(p.cfg.Rate/1000, 256), chunk)
	}
	buf := make([]byte, chunk)
	next := time.Now()
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if p.cfg.Rate > 0 {
				if now := time.Now(); next.Before(now) {
					next = now
				}
				next = next.Add(time.Duration(n) * time.Second / time.Duration(p.cfg.Rate))
				time.Sleep(time.Until(next))
			}
			if waitLight(p.cfg.Network, p.done, nil) != nil { // the proxy closed
				_ = src.Close()
				_ = dst.Close()
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				_ = src.Close()
				_ = dst.Close()
				return
			}
		}
		if err != nil {
			if tc, ok := dst.(*net.TCPConn); ok && errors.Is(err, io.EOF) {
				_ = tc.CloseWrite()
			} else {
				_ = src.Close()
				_ = dst.Close()
			}
			return
		}
	}
}
