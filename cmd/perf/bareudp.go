package main

// The bare UDP subject of -idle: what keeping idle sessions alive costs a
// server that does nothing else, for the kcp row's CPU ratio. Its server
// (perf bare-udp-server) sends each client it has heard from a 48-byte
// packet once a second, as the KCP listener sends its KEEPALIVEs: the
// clients due in each 100 ms slot, in sendmmsg batches of 128. It reads
// their answers in recvmmsg batches of 32. Its clients (perf
// bare-udp-clients) answer every packet at once, as a Roomwire client
// answers a KEEPALIVE. So an idle session costs it one packet each way a
// second, as it costs the gameserver; what the kcp row spends beyond this
// row is Roomwire's (sealing, sessions, timers, the clock's PINGs).

import (
	"context"
	"flag"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
)

// bareUDP is the -idle subject that is bare UDP keep-alives.
const bareUDP = "bare-udp"

// bareUDPPacket is the size of the bare keep-alives, about a sealed
// KEEPALIVE's.
const bareUDPPacket = 48

// serveBareUDP is `perf bare-udp-server`, until SIGINT or SIGTERM. Its HTTP
// address serves what bare-quic-server's does; the active connections are
// the clients heard from.
func serveBareUDP(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("perf bare-udp-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	udpAddr := fs.String("udp", "127.0.0.1:0", "UDP `address` to serve")
	httpAddr := fs.String("http", "127.0.0.1:0", "TCP `address` of the figures")
	if err := fs.Parse(args); err != nil {
		return err
	}
	uc, err := net.ListenPacket("udp4", *udpAddr)
	if err != nil {
		return err
	}
	defer uc.Close()
	var active atomic.Int64
	closeFigures, err := serveFigures(*httpAddr, &active)
	if err != nil {
		return err
	}
	defer closeFigures()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	pc := ipv4.NewPacketConn(uc)
	var (
		mu    sync.Mutex
		peers []net.Addr
		wg    sync.WaitGroup
	)
	wg.Go(func() { // the reader: the answers, and each new client
		known := map[netip.AddrPort]bool{}
		msgs := make([]ipv4.Message, 32)
		for i := range msgs {
			msgs[i].Buffers = [][]byte{make([]byte, 1500)}
		}
		for {
			k, err := pc.ReadBatch(msgs, 0)
			if err != nil {
				return // the socket closed
			}
			for _, m := range msgs[:k] {
				ua, ok := m.Addr.(*net.UDPAddr)
				if !ok {
					continue
				}
				if ap := ua.AddrPort(); !known[ap] {
					known[ap] = true
					mu.Lock()
					peers = append(peers, m.Addr)
					mu.Unlock()
					active.Add(1)
				}
			}
		}
	})
	defer wg.Wait()
	defer uc.Close() // ends the reader, before the wait

	payload := make([]byte, bareUDPPacket)
	var batch []ipv4.Message
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for slot := 0; ; slot = (slot + 1) % 10 {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		batch = batch[:0]
		mu.Lock()
		for i := slot; i < len(peers); i += 10 {
			batch = append(batch, ipv4.Message{Buffers: [][]byte{payload}, Addr: peers[i]})
		}
		mu.Unlock()
		for b := batch; len(b) > 0; {
			n, err := pc.WriteBatch(b[:min(len(b), 128)], 0)
			if err != nil || n == 0 {
				break // a full socket buffer: the next second sends again
			}
			b = b[n:]
		}
	}
}

// bareUDPClients is `perf bare-udp-clients`: n UDP sockets, from 127.0.0.1
// to 127.0.0.64 in turn for a loopback server, that say hello and then
// answer every packet, for the duration or until SIGINT or SIGTERM. It
// prints a report like bare-quic-clients'.
func bareUDPClients(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("perf bare-udp-clients", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "the bare server's UDP `address`")
	n := fs.Int("n", 1000, "clients")
	duration := fs.Duration("duration", time.Minute, "how long each client stays")
	_ = fs.Duration("connect-timeout", 0, "unused: bare UDP has no handshake (accepted as the other subjects' clients take it)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	raddr, err := net.ResolveUDPAddr("udp4", *addr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	var (
		connected, failed atomic.Int64
		errs              errorTally
		wg                sync.WaitGroup
	)
	began := time.Now()
	for i := range *n {
		laddr := &net.UDPAddr{}
		if raddr.IP.IsLoopback() {
			laddr.IP = net.IPv4(127, 0, 0, byte(1+i%64))
		}
		c, err := net.DialUDP("udp4", laddr, raddr)
		if err != nil {
			failed.Add(1)
			errs.add(err)
			continue
		}
		connected.Add(1)
		context.AfterFunc(ctx, func() { _ = c.Close() })
		wg.Go(func() {
			b := make([]byte, 1500)
			if _, err := c.Write(b[:bareUDPPacket]); err != nil {
				return
			}
			for {
				if _, err := c.Read(b); err != nil {
					return // closed at the end
				}
				_, _ = c.Write(b[:bareUDPPacket])
			}
		})
	}
	wg.Wait()
	return writeBareReport(stdout, bareUDP, *n, &connected, &failed, began, &errs)
}
