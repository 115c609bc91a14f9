package netcode

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode/token"
	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/netcode/transport/mem"
)

// The housekeeping sends a resumable connection a new ticket once one is
// due, not before, and makes the next due ticketRefresh later.
func TestTicketRefreshWhenDue(t *testing.T) {
	l := mem.NewListener("refresh")
	srv, err := NewServer(Config{Listeners: []transport.Listener{l}})
	require.NoError(t, err)
	conns := make(chan *Conn, 1)
	srv.OnConnect(func(c *Conn) { conns <- c })
	serveInTest(t, srv)
	cl := NewClient(ClientConfig{
		Dial: func(ctx context.Context, _ string) (transport.Session, error) { return l.Dial(ctx) },
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, cl.Connect(ctx, "mem://refresh"))
	defer cl.Close()
	c := recvOrFail(t, ctx, conns)
	ticket := func() *token.ConnectToken {
		cl.mu.Lock()
		defer cl.mu.Unlock()
		return cl.ticket
	}
	require.Eventually(t, func() bool { return ticket() != nil }, 5*time.Second, 5*time.Millisecond, "the grant's ticket")
	first := ticket()
	due := c.sres.refreshAt.Load()
	require.Greater(t, time.Duration(due-time.Now().UnixNano()), ticketRefresh-time.Minute, "the next ticket is due about ticketRefresh after the grant")

	c.refreshTicket(time.Unix(0, due-1))
	time.Sleep(100 * time.Millisecond)
	require.Same(t, first, ticket(), "no ticket before it is due")
	require.Equal(t, due, c.sres.refreshAt.Load())

	c.refreshTicket(time.Unix(0, due))
	require.Eventually(t, func() bool { return ticket() != first }, 5*time.Second, 5*time.Millisecond, "a new ticket")
	require.Greater(t, c.sres.refreshAt.Load(), due, "the next is due later")
}

// serveInTest serves srv until the test ends, then closes it and waits
// for Serve to return.
func serveInTest(t *testing.T, srv *Server) {
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(context.Background())
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-served
	})
}

// recvOrFail is the next value from ch, failing the test if none comes
// before ctx ends.
func recvOrFail[T any](t *testing.T, ctx context.Context, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
		var zero T
		t.Fatalf("no %T before the deadline", zero)
		return zero
	}
}
