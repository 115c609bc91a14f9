package netcode

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A bucket admits its rate and bursts, drops the excess, and says to close
// only a sender that keeps at twice the rate for overFor.
func TestBucket(t *testing.T) {
	t0 := time.Unix(1000, 0)
	run := func(perSecond float64, offered float64, d time.Duration) (admitted, dropped int, closedAt time.Duration) {
		b := newBucket("test", Rate{PerSecond: perSecond, Burst: int(perSecond)})
		step := time.Duration(float64(time.Second) / offered)
		closedAt = -1
		for at := time.Duration(0); at < d; at += step {
			ok, closeIt := b.take(t0.Add(at), 1)
			if ok {
				admitted++
			} else {
				dropped++
			}
			if closeIt && closedAt < 0 {
				closedAt = at
			}
		}
		return
	}
	admitted, dropped, closedAt := run(100, 90, 10*time.Second)
	require.Zero(t, dropped, "under the rate nothing is dropped")
	require.InDelta(t, 900, admitted, 2)
	require.Less(t, closedAt, time.Duration(0))

	admitted, dropped, closedAt = run(100, 150, 10*time.Second)
	require.InDelta(t, 1100, admitted, 20, "the rate plus the burst")
	require.InDelta(t, 400, dropped, 20)
	require.Less(t, closedAt, time.Duration(0), "1.5× the rate is throttled, not closed")

	_, _, closedAt = run(100, 200, 10*time.Second)
	require.Greater(t, closedAt, time.Second, "2× the rate is closed after about overFor")
	require.Less(t, closedAt, 4*time.Second)

	_, _, closedAt = run(10, 100000, 10*time.Second)
	require.GreaterOrEqual(t, closedAt, time.Duration(0))
	require.Less(t, closedAt, 10*time.Millisecond, "a flood is closed at once")

	require.Nil(t, newBucket("off", Rate{PerSecond: -1}), "a negative rate is no limit")
	ok, closeIt := (*bucket)(nil).take(t0, 1<<30)
	require.True(t, ok)
	require.False(t, closeIt)
}

// A connection's per-event buckets are made at their event's first use,
// once even when goroutines race for it, and then spend as one bucket.
func TestBudgetPerEventMadeAtFirstUse(t *testing.T) {
	limits := newEventLimits(map[string]Rate{"chat": {PerSecond: 1, Burst: 1}, "free": {PerSecond: -1}})
	b := newBudget(&Budgets{}, limits)
	require.Len(t, b.perEvent, 1, "no bucket slot for an unlimited event")
	require.Nil(t, b.perEvent[0].Load(), "made before its first use")
	require.Nil(t, b.event([]byte("free")))
	require.Nil(t, b.event([]byte("other")))

	got := make(chan *bucket, 8)
	for range cap(got) {
		go func() { got <- b.event([]byte("chat")) }()
	}
	first := <-got
	require.NotNil(t, first)
	for range cap(got) - 1 {
		require.Same(t, first, <-got, "two buckets for one event")
	}
	require.Equal(t, "budget_event:chat", first.name)
	t0 := time.Unix(1000, 0)
	ok, _ := b.event([]byte("chat")).take(t0, 1)
	require.True(t, ok)
	ok, _ = b.event([]byte("chat")).take(t0, 1)
	require.False(t, ok, "the burst of 1 was spent")
	require.Zero(t, testing.AllocsPerRun(100, func() { b.event([]byte("chat")) }))

	other := newBudget(&Budgets{}, limits)
	require.Nil(t, other.perEvent[0].Load(), "another connection's bucket is its own")
}
