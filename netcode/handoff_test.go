package netcode_test

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode"
	"github.com/roomwire/roomwire/netcode/netcodetest"
	"github.com/roomwire/roomwire/netcode/token"
	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/netcode/transport/kcp"
	"github.com/roomwire/roomwire/netcode/transport/quic"
)

// handoffPair is two servers of one cluster (one token key) that echo
// numbered hist events into one history, and a client of the first whose
// network a test can switch off and whose dials go where they are told.
type handoffPair struct {
	a, b           *netcode.Server
	cl             *netcode.Client
	net            *darkNet
	atServer, atCl *history
	onB            atomic.Int32 // hist events handled by b
}

func newHandoffPair(t *testing.T, name string) *handoffPair {
	p := &handoffPair{net: &darkNet{}, atServer: &history{}, atCl: &history{}}
	tr := netcodetest.Find(name)
	tokens := &netcode.Tokens{Key: token.DevKey, ProtocolID: netcodetest.ProtocolID}
	serve := func(count *atomic.Int32) func(*netcode.Server) {
		return func(s *netcode.Server) {
			s.On("hist", func(c *netcode.Conn, b []byte) {
				p.atServer.add(b)
				if count != nil {
					count.Add(1)
				}
				_ = c.Emit("hist", b)
			})
		}
	}
	p.a = netcodetest.Server(t, tr, &netcode.Config{Tokens: tokens}, serve(nil))
	p.b = netcodetest.Server(t, tr, &netcode.Config{Tokens: tokens}, serve(&p.onB))
	p.cl = netcode.NewClient(netcode.ClientConfig{InsecureSkipVerify: true, Token: netcodetest.Token(),
		Dial: func(ctx context.Context, host string) (transport.Session, error) {
			addr, err := net.ResolveUDPAddr("udp", host)
			if err != nil {
				return nil, err
			}
			pc := p.net.open(t)
			if name == "kcp" {
				return kcp.DialConn(ctx, pc, addr.AddrPort(), netcode.DialToken(ctx), kcp.Config{})
			}
			return quic.DialOwned(ctx, pc, addr, &tls.Config{InsecureSkipVerify: true}, quic.Config{})
		}})
	p.cl.On("hist", p.atCl.add)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, p.cl.Connect(ctx, tr.URL(p.a)))
	t.Cleanup(func() { _ = p.cl.Close() })
	_, err := p.cl.Request(ctx, "nothing", nil) // a round trip: resume granted
	require.Error(t, err)
	return p
}

// emit sends numbered hist events from n+1 on, count of them, 5 ms apart.
func (p *handoffPair) emit(t *testing.T, n *uint64, count int) {
	for range count {
		*n++
		require.NoError(t, p.cl.Emit("hist", binary.BigEndian.AppendUint64(nil, *n)))
		time.Sleep(5 * time.Millisecond)
	}
}

// A session handed from one server to another while its client sends goes
// on there: same id, every event handled once and in order on one server
// or the other, every echo back once and in order, and the old server
// refuses a resume with where the session went.
func TestHandoffMovesASession(t *testing.T) {
	for _, name := range []string{"quic", "kcp"} {
		t.Run(name, func(t *testing.T) {
			p := newHandoffPair(t, name)
			id := p.cl.ID()
			var n uint64
			sending := make(chan uint64)
			go func() { // the client keeps sending across the move
				var m uint64
				for range 100 {
					m++
					if p.cl.Emit("hist", binary.BigEndian.AppendUint64(nil, m)) != nil {
						break
					}
					time.Sleep(3 * time.Millisecond)
				}
				sending <- m
			}()
			time.Sleep(100 * time.Millisecond)
			h, err := p.a.Conn(id).StartHandoff(netcodetest.Find(name).URL(p.b))
			require.NoError(t, err)
			adopted, err := p.b.Adopt(h.State())
			require.NoError(t, err)
			require.Equal(t, id, adopted.ID())
			require.True(t, adopted.Away(), "adopted sessions wait for their client")
			h.Commit()
			n = <-sending
			p.emit(t, &n, 20)
			checkSession(t, p.cl, id, p.atServer, p.atCl, n)
			require.Positive(t, p.onB.Load(), "the new server handled events")
			require.False(t, adopted.Away())
			require.Eventually(t, func() bool { return p.a.Conn(id) == nil }, 5*time.Second, 10*time.Millisecond)
			require.Same(t, adopted, p.b.Conn(id))
		})
	}
}

// A client whose transport died before its $moved arrived resumes at the
// old server, which sends it on with CloseMoved.
func TestHandoffWhileAway(t *testing.T) {
	p := newHandoffPair(t, "quic")
	id := p.cl.ID()
	var n uint64
	p.emit(t, &n, 10)
	p.net.set(true)
	netcodetest.Eventually(t, func() bool { return p.a.Conn(id).Away() }, "away on the old server")
	p.emit(t, &n, 10) // queued while away
	h, err := p.a.Conn(id).StartHandoff(netcodetest.Find("quic").URL(p.b))
	require.NoError(t, err)
	_, err = p.b.Adopt(h.State())
	require.NoError(t, err)
	h.Commit()
	p.net.set(false)
	p.emit(t, &n, 10)
	checkSession(t, p.cl, id, p.atServer, p.atCl, n)
	require.Equal(t, uint64(1), p.a.Metrics().Drops["resume_moved"], "the old server sent the client on")
}

// An aborted handoff leaves the session where it was, nothing lost: the
// frames held back while frozen are handled.
func TestHandoffAbort(t *testing.T) {
	p := newHandoffPair(t, "kcp")
	id := p.cl.ID()
	var n uint64
	p.emit(t, &n, 10)
	h, err := p.a.Conn(id).StartHandoff(netcodetest.Find("kcp").URL(p.b))
	require.NoError(t, err)
	p.emit(t, &n, 10) // held back while frozen
	require.Error(t, p.a.Conn(id).Emit("x", nil), "a frozen connection takes nothing new")
	h.Abort()
	p.emit(t, &n, 10)
	checkSession(t, p.cl, id, p.atServer, p.atCl, n)
	require.Zero(t, p.onB.Load())
}

// Adopt refuses what does not parse, whatever its length, and an id it
// has; nothing panics.
func TestAdoptRefusesBadStates(t *testing.T) {
	p := newHandoffPair(t, "quic")
	var n uint64
	p.emit(t, &n, 5)
	h, err := p.a.Conn(p.cl.ID()).StartHandoff("quic://127.0.0.1:1")
	require.NoError(t, err)
	defer h.Abort()
	st := h.State()
	for i := 0; i < len(st); i++ {
		_, err := p.b.Adopt(st[:i])
		require.ErrorIs(t, err, netcode.ErrBadHandoff, "cut at %d", i)
	}
	bad := append([]byte(nil), st...)
	bad[0] = 'X'
	_, err = p.b.Adopt(bad)
	require.ErrorIs(t, err, netcode.ErrBadHandoff, "another format")
	bad = append(bad[:0], st...)
	out := 4 + 16 + 1 + 4 // the number after the last frame
	binary.BigEndian.PutUint32(bad[out:], binary.BigEndian.Uint32(bad[out:])+1)
	_, err = p.b.Adopt(bad)
	require.ErrorIs(t, err, netcode.ErrBadHandoff, "frame numbers that do not add up")
	_, err = p.b.Adopt(append(append([]byte(nil), st...), 0))
	require.ErrorIs(t, err, netcode.ErrBadHandoff, "a byte too many")
	_, err = p.a.Adopt(st)
	require.ErrorIs(t, err, netcode.ErrIDTaken)
	require.Nil(t, p.b.Conn(p.cl.ID()))
}
