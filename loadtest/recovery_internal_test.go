package loadtest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode/transport/impair"
)

// blackoutEnds lists when each window ends, bounded by the horizon and by
// Until, and nothing for a network that never lights again.
func TestBlackoutEnds(t *testing.T) {
	s := time.Second
	for _, c := range []struct {
		b       impair.Blackout
		horizon time.Duration
		want    []time.Duration
	}{
		{impair.Blackout{}, time.Minute, nil},
		{impair.Blackout{Start: 10 * s, Length: 3 * s}, time.Minute, []time.Duration{13 * s}},
		{impair.Blackout{Start: 10 * s, Length: 3 * s}, 10 * s, nil}, // opens at the horizon
		{impair.Blackout{Start: 5 * s, Length: 2 * s, Every: 5 * s}, 21 * s, []time.Duration{7 * s, 12 * s, 17 * s, 22 * s}},
		{impair.Blackout{Start: 5 * s, Length: 2 * s, Every: 5 * s, Until: 20 * s}, time.Minute, []time.Duration{7 * s, 12 * s, 17 * s}},
		{impair.Blackout{Start: 5 * s, Length: 2 * s, Until: 5 * s}, time.Minute, nil},
		{impair.Blackout{Start: 5 * s, Length: 2 * s, Every: 2 * s}, time.Minute, nil}, // dark for ever
	} {
		require.Equal(t, c.want, blackoutEnds(c.b, c.horizon), "%+v", c.b)
	}
}

// A recovery measures from each window's end to the first snapshot and to
// the first OnBack after it: earlier ones do not count, a window followed
// by none before the next one ended has no figure, and only windows that
// ended after the bot joined and before it stopped count.
func TestRecovery(t *testing.T) {
	ms := time.Millisecond
	origin := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return origin.Add(d) }
	r := newRecovery()
	r.snapshot(at(time.Second)) // before arm: nothing
	r.backAt(at(time.Second))
	// Dark 1-2 s, 3-4 s, 5-6 s, 7-8 s and 9-10 s; joined at 1.5 s, so the
	// first window, which ended after, counts.
	r.arm(impair.Blackout{Start: time.Second, Length: time.Second, Every: 2 * time.Second}, origin, at(1500*ms), 10*time.Second)
	require.Len(t, r.ends, 5)

	r.snapshot(at(1900 * ms)) // in the dark: not after an end
	r.snapshot(at(2030 * ms)) // 30 ms after the first end
	r.snapshot(at(2060 * ms)) // not the first after it
	r.backAt(at(2010 * ms))   // 10 ms
	r.backAt(at(2500 * ms))   // a second resume after the same end
	// The second window (ends at 4 s) sees neither; the third (6 s) a
	// snapshot after 200 ms and an OnBack after 300 ms, both after the
	// fourth window opened but before it ended.
	r.snapshot(at(6200 * ms))
	r.backAt(at(7300 * ms))
	// The fourth (8 s) sees a snapshot 1 s after it, the fifth ends (10 s)
	// after the bot stopped at 9.5 s.
	r.snapshot(at(9 * time.Second))
	require.EqualValues(t, 4, r.finish(at(9500*ms)))
	r.snapshot(at(10100 * ms)) // after finish: nothing
	r.backAt(at(10100 * ms))

	require.EqualValues(t, 3, r.snap.TotalCount())
	require.InDelta(t, float64(200*ms/time.Microsecond), float64(r.snap.ValueAtQuantile(50)), 1000)
	require.InDelta(t, float64(time.Second/time.Microsecond), float64(r.snap.Max()), 1000)
	require.InDelta(t, float64(30*ms/time.Microsecond), float64(r.snap.Min()), 100)
	require.EqualValues(t, 2, r.back.TotalCount())
	require.InDelta(t, float64(10*ms/time.Microsecond), float64(r.back.Min()), 100)
	require.InDelta(t, float64(1300*ms/time.Microsecond), float64(r.back.Max()), 2000)

	var none *recovery // no blackout: every method is a no-op
	none.arm(impair.Blackout{Length: time.Second}, origin, origin, time.Minute)
	none.snapshot(origin)
	none.backAt(origin)
	require.Zero(t, none.finish(origin))
}
