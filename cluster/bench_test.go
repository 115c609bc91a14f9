package cluster_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/roomwire/roomwire/netcode"
	"github.com/roomwire/roomwire/rooms"
	"github.com/roomwire/roomwire/rooms/arena"
)

// reportPercentiles reports the p50 and p99 of ds in microseconds.
func reportPercentiles(b *testing.B, ds []time.Duration, what string) {
	if len(ds) == 0 {
		return
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	b.ReportMetric(float64(ds[len(ds)/2].Microseconds()), what+"-p50-µs")
	b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds()), what+"-p99-µs")
}

// A directory write on a 3-node cluster (JetStream KV R3, each node's NATS
// embedded): a join-or-create of a new room name, which claims it, then
// the room's disposal, which releases it.
func BenchmarkDirectoryClaim(b *testing.B) {
	nodes := startCluster(b, 3, 10*time.Second)
	dir := nodes[0].cl.Directory()
	ds := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		r, err := dir.Claim(nil, arena.Kind, fmt.Sprintf("bench-%d", i))
		ds = append(ds, time.Since(start))
		if err != nil || r != nil {
			b.Fatalf("claim: %v %v", r, err)
		}
	}
	b.StopTimer()
	reportPercentiles(b, ds, "claim")
}

// A broadcast from a member on one node to a member on another, against
// one between two members of the same node (the baseline, same run): the
// time from the sender's emit to the other client receiving it.
func BenchmarkBroadcast(b *testing.B) {
	nodes := startCluster(b, 3, 10*time.Second)
	for _, c := range []struct {
		name string
		on   *node
	}{{"same-node", nodes[0]}, {"across-nodes", nodes[1]}} {
		b.Run(c.name, func(b *testing.B) {
			got := make(chan struct{}, 1)
			rx := dial(b, c.on, func(cl *netcode.Client) { cl.On("said", func([]byte) { got <- struct{}{} }) })
			tx := dial(b, nodes[0], nil)
			for _, cl := range []*netcode.Client{rx, tx} {
				if err := cl.Emit("sub", []byte("lobby")); err != nil {
					b.Fatal(err)
				}
			}
			for nodes[0].hub.Members("lobby")+nodes[1].hub.Members("lobby") < 2 {
				time.Sleep(10 * time.Millisecond)
			}
			ds := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				if err := tx.Emit("say", []byte("x")); err != nil {
					b.Fatal(err)
				}
				select {
				case <-got:
				case <-time.After(5 * time.Second):
					b.Fatal("broadcast lost")
				}
				ds = append(ds, time.Since(start))
			}
			b.StopTimer()
			reportPercentiles(b, ds, "broadcast")
			_ = rx.Close()
			_ = tx.Close()
			for nodes[0].hub.Members("lobby")+nodes[1].hub.Members("lobby") > 0 {
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// A join through a node that does not own the room (the redirect, a new
// connection to the owner with the seat token, the join there) to the
// room's first snapshot, against a join made on the owner (the baseline,
// same run), from connect to first snapshot.
func BenchmarkJoinToSnapshot(b *testing.B) {
	nodes := startCluster(b, 3, 10*time.Second)
	owner := dial(b, nodes[0], nil)
	if _, err := rooms.Join(context.Background(), owner, arena.Kind, "target"); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		via  *node
	}{{"on-owner", nodes[0]}, {"by-redirect", nodes[1]}} {
		b.Run(c.name, func(b *testing.B) {
			ds := make([]time.Duration, 0, b.N)
			for range b.N {
				snap := make(chan struct{}, 1)
				setup := func(cl *netcode.Client) {
					cl.OnSnapshot(func(uint32, []byte) {
						select {
						case snap <- struct{}{}:
						default:
						}
					})
				}
				// A random phase against the room's 30 Hz tick: back to back,
				// every join would start just after a tick and wait a whole one.
				time.Sleep(time.Duration(rand.Int64N(int64(time.Second / 30))))
				start := time.Now()
				cl := netcode.NewClient(clientConfig())
				setup(cl)
				if err := cl.Connect(context.Background(), c.via.url()); err != nil {
					b.Fatal(err)
				}
				now, _, err := rooms.JoinFollow(context.Background(), cl, clientConfig(), setup, arena.Kind, "target")
				if err != nil {
					b.Fatal(err)
				}
				<-snap
				ds = append(ds, time.Since(start))
				_ = now.Close()
				for nodes[0].hub.Room("target").Info().Members > 1 { // gone, so the room never fills
					time.Sleep(time.Millisecond)
				}
			}
			reportPercentiles(b, ds, "join-to-snapshot")
		})
	}
}
