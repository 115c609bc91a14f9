package netcode_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode"
	nt "github.com/roomwire/roomwire/netcode/netcodetest"
	"github.com/roomwire/roomwire/netcode/transport/kcp"
	"github.com/roomwire/roomwire/netcode/transport/quic"
)

func echo(s *netcode.Server) {
	s.Handle("echo", func(_ *netcode.Conn, req []byte) ([]byte, error) { return req, nil })
}

func TestRequestReply(t *testing.T) {
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		srv := nt.Server(t, tr, nil, echo)
		cl := nt.Client(t, tr, srv, nil)
		for _, size := range []int{0, 1, 1000, 60 << 10} {
			req := bytes.Repeat([]byte{byte(size)}, size)
			rep, err := cl.Request(context.Background(), "echo", req)
			require.NoError(t, err)
			require.Equal(t, req, rep)
		}
		require.Len(t, cl.ID().String(), 32)
		require.NotNil(t, srv.Conn(cl.ID()), "server knows the client by the id it was welcomed with")
	})
}

func TestRequestTimeout(t *testing.T) {
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		release := make(chan struct{})
		srv := nt.Server(t, tr, nil, func(s *netcode.Server) {
			s.Handle("slow", func(*netcode.Conn, []byte) ([]byte, error) {
				<-release
				return []byte("late"), nil
			})
		})
		defer close(release)
		cl := nt.Client(t, tr, srv, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := cl.Request(ctx, "slow", nil)
		require.ErrorIs(t, err, netcode.ErrRequestTimeout)
		require.ErrorIs(t, err, context.DeadlineExceeded)
	})
}

func TestRequestWithoutHandlerFailsFast(t *testing.T) {
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		srv := nt.Server(t, tr, nil, nil)
		cl := nt.Client(t, tr, srv, nil)
		start := time.Now()
		_, err := cl.Request(context.Background(), "missing", nil)
		var re *netcode.RemoteError
		require.ErrorAs(t, err, &re)
		require.Contains(t, re.Message, `no handler for "missing"`)
		require.Less(t, time.Since(start), 5*time.Second, "the error reply, not the timeout, ended the request")
		require.EqualValues(t, 1, srv.Metrics().RequestsUnhandled)
	})
}

func TestEventWithoutHandlerIsCountedAndIgnored(t *testing.T) {
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		srv := nt.Server(t, tr, nil, echo)
		cl := nt.Client(t, tr, srv, nil)
		require.NoError(t, cl.Emit("nobody-listens", []byte("x")))
		nt.Eventually(t, func() bool { return srv.Metrics().EventsUnhandled == 1 }, "unhandled event counted")
		_, err := cl.Request(context.Background(), "echo", nil)
		require.NoError(t, err, "the connection goes on")
	})
}

func TestHandlerPanicIsRecovered(t *testing.T) {
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		srv := nt.Server(t, tr, nil, func(s *netcode.Server) {
			echo(s)
			s.Handle("boom", func(*netcode.Conn, []byte) ([]byte, error) { panic("boom") })
			s.On("boom", func(*netcode.Conn, []byte) { panic("boom event") })
		})
		cl := nt.Client(t, tr, srv, nil)
		_, err := cl.Request(context.Background(), "boom", nil)
		var re *netcode.RemoteError
		require.ErrorAs(t, err, &re)
		require.NoError(t, cl.Emit("boom", nil))
		nt.Eventually(t, func() bool { return srv.Metrics().HandlerPanics == 2 }, "both panics counted")
		rep, err := cl.Request(context.Background(), "echo", []byte("still here"))
		require.NoError(t, err)
		require.Equal(t, "still here", string(rep))
	})
}

func TestEventsBothWaysInOrder(t *testing.T) {
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		const n = 500
		srv := nt.Server(t, tr, nil, func(s *netcode.Server) {
			s.On("up", func(c *netcode.Conn, p []byte) { _ = c.Emit("down", p) })
		})
		got := make(chan byte, n)
		cl := nt.Client(t, tr, srv, func(c *netcode.Client) {
			c.On("down", func(p []byte) { got <- p[0] })
		})
		for i := 0; i < n; i++ {
			require.NoError(t, cl.Emit("up", []byte{byte(i)}))
		}
		for i := 0; i < n; i++ {
			require.Equal(t, byte(i), nt.Recv(t, got, "echoed event"))
		}
	})
}

func TestEmitToOneConnectionByID(t *testing.T) {
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		srv := nt.Server(t, tr, nil, nil)
		gotA, gotB := make(chan string, 1), make(chan string, 1)
		a := nt.Client(t, tr, srv, func(c *netcode.Client) { c.On("dm", func(p []byte) { gotA <- string(p) }) })
		nt.Client(t, tr, srv, func(c *netcode.Client) { c.On("dm", func(p []byte) { gotB <- string(p) }) })
		require.NoError(t, srv.Conn(a.ID()).Emit("dm", []byte("for a")))
		require.Equal(t, "for a", nt.Recv(t, gotA, "dm"))
		nt.Never(t, gotB, 100*time.Millisecond, "dm for another client")
	})
}

func TestDisconnectReasons(t *testing.T) {
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		serverSaw := make(chan *netcode.CloseError, 2)
		srv := nt.Server(t, tr, nil, func(s *netcode.Server) {
			s.OnDisconnect(func(_ *netcode.Conn, ce *netcode.CloseError) { serverSaw <- ce })
		})

		// Kicked by the server: the client learns code and reason.
		clientSaw := make(chan *netcode.CloseError, 1)
		connected := make(chan struct{}, 1)
		kicked := nt.Client(t, tr, srv, func(c *netcode.Client) {
			c.OnConnect(func() { connected <- struct{}{} })
			c.OnDisconnect(func(ce *netcode.CloseError) { clientSaw <- ce })
		})
		nt.Recv(t, connected, "the connect callback")
		srv.Conn(kicked.ID()).Close("cheating detected")
		ce := nt.Recv(t, clientSaw, "client disconnect")
		require.Equal(t, netcode.CloseKicked, ce.Code)
		require.Equal(t, "cheating detected", ce.Reason)
		require.True(t, ce.Remote)
		require.ErrorIs(t, kicked.Err(), net.ErrClosed)
		require.Equal(t, netcode.CloseKicked, nt.Recv(t, serverSaw, "server disconnect").Code)

		// Closed by the client: the server learns it.
		leaving := nt.Client(t, tr, srv, nil)
		require.NoError(t, leaving.Close())
		require.NoError(t, leaving.Close(), "Close is idempotent")
		ce = nt.Recv(t, serverSaw, "server disconnect")
		require.Equal(t, netcode.CloseNormal, ce.Code)
		require.True(t, ce.Remote)
		require.Error(t, leaving.Emit("x", nil), "a closed client refuses to send")
	})
}

func TestShutdownTellsClientsWhy(t *testing.T) {
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		srv := nt.Server(t, tr, nil, nil)
		const n = 3
		saw := make(chan *netcode.CloseError, n)
		for i := 0; i < n; i++ {
			nt.Client(t, tr, srv, func(c *netcode.Client) {
				c.OnDisconnect(func(ce *netcode.CloseError) { saw <- ce })
			})
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, srv.Shutdown(ctx))
		for i := 0; i < n; i++ {
			ce := nt.Recv(t, saw, "shutdown reason")
			require.Equal(t, netcode.CloseGoingAway, ce.Code, ce.Reason)
			require.Equal(t, "server shutting down", ce.Reason)
		}
		short := netcode.ClientConfig{
			KCP:  kcp.Config{HandshakeTimeout: 300 * time.Millisecond},
			QUIC: quic.Config{HandshakeTimeout: 300 * time.Millisecond},
		}
		_, err := nt.TryClient(tr, srv, short, func(c *netcode.Client) {})
		require.Error(t, err, "a shut-down server accepts no one")
	})
}

func TestAuthenticateRefusalReachesClient(t *testing.T) {
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		cfg := &netcode.Config{Authenticate: func(_ context.Context, h netcode.Hello) (netcode.Identity, error) {
			if string(h.Auth) != "secret" {
				return netcode.Identity{}, errors.New("bad token")
			}
			return netcode.Identity{User: "alice"}, nil
		}}
		srv := nt.Server(t, tr, cfg, func(s *netcode.Server) {
			s.Handle("whoami", func(c *netcode.Conn, _ []byte) ([]byte, error) { return []byte(c.Identity().User), nil })
		})
		_, err := nt.TryClient(tr, srv, netcode.ClientConfig{Auth: []byte("wrong")}, nil)
		var ce *netcode.CloseError
		require.ErrorAs(t, err, &ce)
		require.Equal(t, netcode.CloseRefused, ce.Code)
		require.Equal(t, "bad token", ce.Reason)

		cl, err := nt.TryClient(tr, srv, netcode.ClientConfig{Auth: []byte("secret")}, nil)
		require.NoError(t, err)
		defer cl.Close()
		who, err := cl.Request(context.Background(), "whoami", nil)
		require.NoError(t, err)
		require.Equal(t, "alice", string(who))
	})
}

func TestInputsReachServer(t *testing.T) {
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		got := make(chan string, 100)
		srv := nt.Server(t, tr, nil, func(s *netcode.Server) {
			s.OnInput(func(_ *netcode.Conn, d []byte) { got <- string(d) })
		})
		cl := nt.Client(t, tr, srv, nil)
		require.NoError(t, cl.SendInput([]byte("left")))
		require.Equal(t, "left", nt.Recv(t, got, "input"))
		err := cl.SendInput(make([]byte, 5000))
		require.Error(t, err, "an input larger than a datagram is refused at the sender")
	})
}

func TestSnapshotsLargerThanADatagramArriveWhole(t *testing.T) {
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		srv := nt.Server(t, tr, nil, nil)
		type snap struct {
			tick uint32
			data []byte
		}
		got := make(chan snap, 16)
		cl := nt.Client(t, tr, srv, func(c *netcode.Client) {
			c.OnSnapshot(func(tick uint32, d []byte) { got <- snap{tick, append([]byte(nil), d...)} })
		})
		conn := srv.Conn(cl.ID())
		for i, size := range []int{10, 1191, 1192, 5000, 20000} {
			s := netcode.NewSnapshot(uint32(i + 1))
			for j := 0; j < size; j++ {
				s.Data = append(s.Data, byte(j*7+i))
			}
			want := append([]byte(nil), s.Data...)
			conn.SendSnapshot(s)
			s.Release()
			g := nt.Recv(t, got, "snapshot")
			require.Equal(t, uint32(i+1), g.tick)
			require.Equal(t, want, g.data, "snapshot of %d bytes arrives byte-identical", size)
		}
	})
}

func TestSlowConsumerIsClosedOthersUnaffected(t *testing.T) {
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		srv := nt.Server(t, tr, &netcode.Config{MaxQueued: 64 << 10}, echo)
		raw, err := tr.Raw(context.Background(), srv)
		require.NoError(t, err)
		defer raw.Close(0, "")
		helloRaw(t, raw)
		id := readWelcome(t, raw)
		conn := srv.Conn(id)
		require.NotNil(t, conn)
		// The raw client never reads again: the server's queue must fill.
		payload := make([]byte, 4<<10)
		var emitErr error
		for i := 0; i < 100000 && emitErr == nil; i++ {
			emitErr = conn.Emit("flood", payload)
		}
		require.Error(t, emitErr)
		nt.Eventually(t, func() bool { return srv.Metrics().SlowConsumers == 1 }, "slow consumer counted")
		var ce *netcode.CloseError
		require.ErrorAs(t, conn.Err(), &ce)
		require.Equal(t, netcode.CloseSlowConsumer, ce.Code)

		other := nt.Client(t, tr, srv, nil)
		_, err = other.Request(context.Background(), "echo", nil)
		require.NoError(t, err)
	})
}

func TestClientCallbacksRunOnceOnClose(t *testing.T) {
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		srv := nt.Server(t, tr, nil, nil)
		var calls atomic.Int32
		cl := nt.Client(t, tr, srv, func(c *netcode.Client) {
			c.OnDisconnect(func(*netcode.CloseError) { calls.Add(1) })
		})
		require.NoError(t, cl.Close())
		_ = srv.Close()
		<-cl.Done()
		require.EqualValues(t, 1, calls.Load())
		require.True(t, strings.Contains(cl.Err().Error(), "client closed"))
	})
}
