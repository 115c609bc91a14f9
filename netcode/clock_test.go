package netcode

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The clock estimate stays within ±5 ms of the server's clock once ten
// PONGs are in, at round trips to 300 ms with ±10 ms of jitter each way and
// a fifth of the PINGs or PONGs retransmitted (a timeout late). Both clocks
// are known: the server's runs 3.7 s ahead.
func TestClockEstimateAtHighRTT(t *testing.T) {
	const ahead = 3700 * time.Millisecond
	for _, rtt := range []time.Duration{0, 150 * time.Millisecond, 300 * time.Millisecond} {
		t.Run(fmt.Sprintf("rtt%dms", rtt.Milliseconds()), func(t *testing.T) {
			worst := time.Duration(0)
			for seed := uint64(1); seed <= 50; seed++ {
				rng := rand.New(rand.NewPCG(seed, uint64(rtt)))
				oneWay := func() time.Duration {
					d := max(0, rtt/2+time.Duration(rng.Int64N(int64(20*time.Millisecond)+1))-10*time.Millisecond)
					if rng.Float64() < 0.1 {
						d += max(rtt, 30*time.Millisecond) + 100*time.Millisecond
					}
					return d
				}
				var c clockSync
				_, ok := c.offset()
				require.False(t, ok)
				sent := time.Unix(1_700_000_000, 0)
				for i := 1; i <= 60; i++ {
					up, down := oneWay(), oneWay()
					server := sent.Add(up + ahead)
					c.add(sent, server, sent.Add(up+down))
					off, ok := c.offset()
					require.True(t, ok)
					if i >= 10 {
						err := (off - ahead).Abs()
						worst = max(worst, err)
						require.LessOrEqual(t, err, 5*time.Millisecond, "seed %d, sample %d", seed, i)
					}
					if i < clockBurst {
						sent = sent.Add(clockBurstGap)
					} else {
						sent = sent.Add(clockPeriod)
					}
				}
			}
			t.Logf("worst error after 10 samples: %v", worst)
		})
	}
}
