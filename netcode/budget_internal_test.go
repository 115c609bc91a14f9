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

// A connection's budgets are made at their first use and let go by trim
// once unused for trimAfter, full and with no drop for overFor; made
// again, a bucket starts full. One in use, not yet refilled, or with
// recent drops stays.
func TestBudgetBucketsTrimmedWhenIdleAndFull(t *testing.T) {
	cfg := &Budgets{Events: Rate{PerSecond: 10, Burst: 2}, EventBytes: Rate{PerSecond: 0.01, Burst: 2}, Datagrams: Rate{PerSecond: -1}}
	b := newBudget(cfg, nil)
	require.Nil(t, b.events.Load(), "made before its first use")
	require.Nil(t, b.datagramsBucket(), "no limit, no bucket")
	at := func(d time.Duration) time.Time { return time.Unix(1000, 0).Add(d) }

	ev := b.eventsBucket()
	require.NotNil(t, ev)
	require.Same(t, ev, b.eventsBucket())
	ok, _ := ev.take(at(0), 2)
	require.True(t, ok)
	ok, _ = ev.take(at(0), 1)
	require.False(t, ok, "the burst is spent: a drop")

	b.trim(at(0))                           // used since the last trim
	b.trim(at(time.Second))                 // unused from here
	b.trim(at(time.Second + trimAfter - 1)) // not yet trimAfter
	require.Same(t, ev, b.events.Load(), "let go before trimAfter")
	ev.take(at(7*time.Second), 0)             // a use
	b.trim(at(8 * time.Second))               // saw it
	b.trim(at(9 * time.Second))               // unused from here
	b.trim(at(9*time.Second + trimAfter - 1)) // not yet
	require.Same(t, ev, b.events.Load(), "let go within trimAfter of a use")
	b.trim(at(9*time.Second + trimAfter)) // unused, full, no recent drop
	require.Nil(t, b.events.Load(), "an idle, full bucket is let go")
	again := b.eventsBucket()
	require.NotSame(t, ev, again)
	ok, _ = again.take(at(20*time.Second), 2)
	require.True(t, ok, "made again, the bucket starts full")

	// Spent and slow to refill: kept however long it is unused.
	by := b.bytesBucket()
	by.take(at(0), 2)
	for s := 1; s < 60; s++ {
		b.trim(at(time.Duration(s) * time.Second))
	}
	require.Same(t, by, b.bytes.Load(), "let go while not full")

	// Refilled, unused long enough, but with a drop within overFor: kept
	// until overFor has passed since the drop.
	b = newBudget(&Budgets{Events: Rate{PerSecond: 1, Burst: 1}}, nil)
	k := b.eventsBucket()
	k.take(at(0), 1)
	k.take(at(0), 1) // the drop
	k.used.Store(false)
	k.quietSince = at(-trimAfter).UnixNano()
	b.trim(at(overFor - time.Millisecond))
	require.Same(t, k, b.events.Load(), "let go with a drop within overFor")
	b.trim(at(overFor))
	require.Nil(t, b.events.Load())

	require.Zero(t, testing.AllocsPerRun(100, func() { _ = b.datagramsBucket() }))
}
