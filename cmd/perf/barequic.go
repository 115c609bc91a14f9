package main

// The bare quic-go subjects of -idle: what an idle QUIC connection costs a
// server that is quic-go and nothing else, for the quic row's ratios. perf
// runs itself twice for each, as a server (perf bare-quic-server) and as
// its idle clients (perf bare-quic-clients), so that each can be pinned to
// its CPU like the gameserver and the botclient. bare-quic has datagrams
// only; bare-quic-stream (-stream) also the one stream each client opens,
// with a goroutine of the server's waiting in its Read, as Roomwire's
// reliable stream has: the cost of the stream is quic-go's, and the quic
// row over bare-quic-stream is what Roomwire adds.

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"runtime/metrics"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/roomwire/roomwire/loadtest"
	"github.com/roomwire/roomwire/netcode"
	quictransport "github.com/roomwire/roomwire/netcode/transport/quic"
)

// bareALPN is the application protocol the bare server and clients agree on.
const bareALPN = "perf-bare-quic"

// bareQUICConfig is quic-go's configuration for both sides: Roomwire's QUIC
// transport's own (datagrams on, a 15 s idle timeout, keep-alives every
// 5 s, a 5 s handshake timeout), so that the two subjects differ only in
// what Roomwire adds on top.
func bareQUICConfig() *quicgo.Config { return quictransport.Config{}.QUICConfig() }

// serveBareQUIC is `perf bare-quic-server`: a quic-go listener that accepts
// every connection and keeps one goroutine per connection reading its
// datagrams (with -stream, another reading the stream the client opens),
// until SIGINT or SIGTERM. Its HTTP address serves what perf
// reads from a gameserver's side port: /healthz, /metrics.json (the
// active connections and the runtime figures) and /debug/pprof/.
func serveBareQUIC(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("perf bare-quic-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	quicAddr := fs.String("quic", "127.0.0.1:0", "UDP `address` to accept QUIC on")
	httpAddr := fs.String("http", "127.0.0.1:0", "TCP `address` of the figures")
	stream := fs.Bool("stream", false, "accept a stream on each connection and keep a goroutine reading it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	tlsConf, err := netcode.DevTLSConfig() // the gameserver's development certificate
	if err != nil {
		return err
	}
	tlsConf.NextProtos = []string{bareALPN}
	ln, err := quicgo.ListenAddr(*quicAddr, tlsConf, bareQUICConfig())
	if err != nil {
		return err
	}
	defer ln.Close()
	var active atomic.Int64
	closeFigures, err := serveFigures(*httpAddr, &active)
	if err != nil {
		return err
	}
	defer closeFigures()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := ln.Accept(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		active.Add(1)
		wg.Go(func() {
			defer active.Add(-1)
			defer conn.CloseWithError(0, "")
			if *stream {
				st, err := conn.AcceptStream(ctx)
				if err != nil {
					return
				}
				wg.Go(func() { drain(st) })
			}
			for {
				if _, err := conn.ReceiveDatagram(ctx); err != nil {
					return
				}
			}
		})
	}
}

// drain reads a stream until it ends, with the small buffer of a reader
// that waits for a frame's header.
func drain(st *quicgo.Stream) {
	var b [16]byte
	for {
		if _, err := st.Read(b[:]); err != nil {
			return
		}
	}
}

// bareHandler serves the bare server's figures, shaped like a gameserver's.
func bareHandler(active *atomic.Int64) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /metrics.json", func(w http.ResponseWriter, _ *http.Request) {
		var m sideMetrics
		m.Server.ConnsActive = active.Load()
		m.Runtime = runtimeNow()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(m)
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	return mux
}

// runtimeNow is the process's goroutines, live heap (as of the last
// collection) and goroutine stacks, as the gameserver's /metrics.json
// gives them.
func runtimeNow() runtimeFigures {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}}
	metrics.Read(s)
	return runtimeFigures{Goroutines: int64(runtime.NumGoroutine()), HeapLive: int64(s[0].Value.Uint64()), Stacks: int64(s[1].Value.Uint64())}
}

// bareDialers bounds the clients' handshakes in flight.
const bareDialers = 64

// bareQUICClients is `perf bare-quic-clients`: n quic-go clients that dial
// the server, from 127.0.0.1 to 127.0.0.64 in turn as the botclient does
// for a loopback server, and then do nothing for the duration (quic-go
// sends their keep-alives), or until SIGINT or SIGTERM. It prints a report
// like the botclient's -json one: bots, connected, failed, duration_s and
// errors. With -stream each opens a stream and writes a byte on it, which
// the server's AcceptStream waits for.
func bareQUICClients(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("perf bare-quic-clients", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "the bare server's UDP `address`")
	n := fs.Int("n", 1000, "clients")
	duration := fs.Duration("duration", time.Minute, "how long each client stays connected")
	connectTimeout := fs.Duration("connect-timeout", 30*time.Second, "bound on each client's handshake")
	stream := fs.Bool("stream", false, "open a stream on each connection and write a byte on it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	subject := bareQUIC
	if *stream {
		subject = bareQUICStream
	}
	raddr, err := net.ResolveUDPAddr("udp", *addr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tlsConf := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{bareALPN}}
	var (
		connected, failed atomic.Int64
		errs              errorTally
		wg                sync.WaitGroup
		dialing           = make(chan struct{}, bareDialers)
	)
	began := time.Now()
	for i := range *n {
		wg.Go(func() {
			dialing <- struct{}{}
			conn, err := dialBare(ctx, raddr, i, tlsConf, *connectTimeout)
			if err == nil && *stream {
				err = openStream(conn)
			}
			<-dialing
			if err != nil {
				failed.Add(1)
				errs.add(err)
				return
			}
			connected.Add(1)
			t := time.NewTimer(*duration)
			defer t.Stop()
			select {
			case <-ctx.Done():
			case <-t.C:
			case <-conn.Context().Done():
				errs.add(fmt.Errorf("disconnected: %w", context.Cause(conn.Context())))
			}
			_ = conn.CloseWithError(0, "")
		})
	}
	wg.Wait()
	return writeBareReport(stdout, subject, *n, &connected, &failed, began, &errs)
}

// openStream opens a client's stream and writes its first byte, so that
// the server sees it; the connection is closed if either fails.
func openStream(conn *quicgo.Conn) error {
	st, err := conn.OpenStream()
	if err == nil {
		_, err = st.Write([]byte{0})
	}
	if err != nil {
		_ = conn.CloseWithError(0, "")
		return fmt.Errorf("open a stream: %w", err)
	}
	return nil
}

// serveFigures serves bareHandler's figures on httpAddr until the returned
// close.
func serveFigures(httpAddr string, active *atomic.Int64) (close func(), err error) {
	hl, err := net.Listen("tcp", httpAddr)
	if err != nil {
		return nil, err
	}
	hs := &http.Server{Handler: bareHandler(active), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(hl) }()
	return func() { _ = hs.Close() }, nil
}

// writeBareReport prints a bare subject's clients' report, shaped like the
// botclient's -json one: bots, connected, failed, duration_s and errors.
func writeBareReport(stdout io.Writer, subject string, n int, connected, failed *atomic.Int64, began time.Time, errs *errorTally) error {
	rep := loadtest.Report{
		Transport: subject, Bots: n, Connected: int(connected.Load()), Failed: int(failed.Load()),
		DurationSeconds: time.Since(began).Seconds(), Errors: errs.list(),
	}
	b, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, string(b))
	return err
}

// dialBare connects client i from its loopback address, when the server is
// on loopback, on a socket of its own that is closed when the connection
// ends.
func dialBare(ctx context.Context, raddr *net.UDPAddr, i int, tlsConf *tls.Config, timeout time.Duration) (*quicgo.Conn, error) {
	laddr := &net.UDPAddr{}
	if raddr.IP.IsLoopback() && raddr.IP.To4() != nil {
		laddr.IP = net.IPv4(127, 0, 0, byte(1+i%64))
	}
	pc, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := quicgo.Dial(ctx, pc, raddr, tlsConf, bareQUICConfig())
	if err != nil {
		_ = pc.Close()
		return nil, err
	}
	context.AfterFunc(conn.Context(), func() { _ = pc.Close() })
	return conn, nil
}

// errorTally counts errors by their text.
type errorTally struct {
	mu sync.Mutex
	n  map[string]int
}

func (t *errorTally) add(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == nil {
		t.n = map[string]int{}
	}
	t.n[err.Error()]++
}

// list is the errors, most frequent first, each with its count.
func (t *errorTally) list() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, len(t.n))
	for msg := range t.n {
		out = append(out, msg)
	}
	sort.Slice(out, func(i, j int) bool {
		if t.n[out[i]] != t.n[out[j]] {
			return t.n[out[i]] > t.n[out[j]]
		}
		return out[i] < out[j]
	})
	for i, msg := range out {
		out[i] = fmt.Sprintf("%s (×%d)", msg, t.n[msg])
	}
	return out
}
