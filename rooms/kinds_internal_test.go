package rooms

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestKindStatsBuckets(t *testing.T) {
	var k kindStats
	for _, d := range []time.Duration{0, 50 * time.Microsecond, 51 * time.Microsecond, 3 * time.Millisecond, time.Second} {
		k.observe(d, 0)
	}
	k.observe(time.Millisecond, 2)
	h := &Hub{kinds: map[string]kind{"arena": {stats: &k}}, games: map[string]*GameRoom{}}
	got := h.Kinds()
	require.Len(t, got, 1)
	ks := got[0]
	require.Equal(t, "arena", ks.Kind)
	require.EqualValues(t, 6, ks.Ticks)
	require.EqualValues(t, 2, ks.LateTicks)
	require.Equal(t, 51*time.Microsecond+50*time.Microsecond+3*time.Millisecond+time.Second+time.Millisecond, ks.TickTime)
	counts := map[time.Duration]uint64{}
	var last uint64
	for _, b := range ks.TickBuckets {
		require.GreaterOrEqual(t, b.Count, last, "cumulative")
		last = b.Count
		counts[b.Le] = b.Count
	}
	require.EqualValues(t, 2, counts[50*time.Microsecond], "0 and 50 µs: a bound is inclusive")
	require.EqualValues(t, 3, counts[100*time.Microsecond])
	require.EqualValues(t, 4, counts[time.Millisecond])
	require.EqualValues(t, 5, counts[5*time.Millisecond])
	require.EqualValues(t, 5, counts[100*time.Millisecond], "the second-long tick is over every bound")
}
