package netcode_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode"
	nt "github.com/roomwire/roomwire/netcode/netcodetest"
)

// On every transport: with CopiesAlways both sides copy their frames into
// datagrams and the requests still complete once each; with the default,
// CopiesAuto, a fast clean path (loopback) soon stops copying, so copies
// cost nothing there.
func TestReliableCopiesModes(t *testing.T) {
	nt.Each(t, func(t *testing.T, tr nt.Transport) {
		for _, mode := range []netcode.CopyMode{netcode.CopiesAlways, netcode.CopiesAuto} {
			t.Run(fmt.Sprint(mode), func(t *testing.T) {
				calls := 0
				srv := nt.Server(t, tr, &netcode.Config{ReliableCopies: mode}, func(s *netcode.Server) {
					s.Handle("echo", func(_ *netcode.Conn, p []byte) ([]byte, error) {
						calls++ // handlers of one connection run one at a time
						return p, nil
					})
				})
				cl, err := nt.TryClient(tr, srv, netcode.ClientConfig{ReliableCopies: mode}, nil)
				require.NoError(t, err)
				defer func() { _ = cl.Close() }()
				const n = 100
				for i := 0; i < n; i++ {
					p := []byte(fmt.Sprint(i))
					rep, err := cl.Request(context.Background(), "echo", p)
					require.NoError(t, err)
					require.Equal(t, p, rep)
					if i%10 == 0 {
						time.Sleep(copiesTestPause) // let the datagram sender run its rounds
					}
				}
				cs, ss := cl.Stats(), srv.Conn(cl.ID()).Stats()
				require.Equal(t, n, calls, "each request handled once")
				if mode == netcode.CopiesAlways {
					require.Greater(t, cs.CopiesSent, uint64(n/10), "the client copies")
					require.Greater(t, ss.CopiesSent, uint64(0), "the server copies for a client that copies")
				} else {
					require.Less(t, cs.CopiesSent+ss.CopiesSent, uint64(10), "no copies on a fast, clean path")
				}
			})
		}
	})
}

const copiesTestPause = 40 * time.Millisecond
