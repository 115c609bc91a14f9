package netcode

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/unreliable"
)

// feed hands the client's receiver a whole snapshot of tick, stamped with
// server time t, arriving at local time now, as the datagram goroutine would
// after reassembly. Its data is the tick, big-endian.
func feed(t testing.TB, c *Client, epoch uint8, tick uint32, st time.Time, now time.Time) {
	var b [unreliable.EnvelopeLen + 4]byte
	env := unreliable.AppendEnvelope(b[:0], unreliable.Envelope{Time: st.UnixNano()})
	env = binary.BigEndian.AppendUint32(env, tick)
	_, undecodable, err := c.snaps.add(tick, epoch, env, now)
	require.NoError(t, err)
	require.False(t, undecodable)
}

// stream describes a synthetic snapshot stream as a client sees it.
type stream struct {
	seed     uint64
	rate     int           // snapshots a second
	latency  time.Duration // one way, server to client
	jitter   time.Duration // each arrival is delayed a further uniform ±jitter, never below zero
	loss     float64
	duration time.Duration
	// step, if set, changes the latency by stepBy at server time step.
	step, stepBy time.Duration
}

type snapArrival struct {
	tick    uint32
	server  time.Time
	arrival time.Time
}

// Both clocks of the synthetic streams: the server's runs serverAhead ahead
// of the client's, and the client's runs clientDrift fast.
var (
	serverStart = time.Unix(1_700_000_000, 0)
	serverAhead = 3700 * time.Millisecond
	clientDrift = 50e-6
)

// localAt is the client's clock when the server's reads st.
func localAt(st time.Time) time.Time {
	d := st.Sub(serverStart)
	return serverStart.Add(-serverAhead + d + time.Duration(float64(d)*clientDrift))
}

// arrivals generates the stream's snapshots that arrive, in arrival order,
// with those overtaken by a newer one dropped as the reassembler would.
func (s stream) arrivals() []snapArrival {
	rng := rand.New(rand.NewPCG(s.seed, 0x5eed))
	interval := time.Second / time.Duration(s.rate)
	var out []snapArrival
	for tick := uint32(1); time.Duration(tick)*interval < s.duration; tick++ {
		// The tick loop wakes up to a millisecond late.
		st := serverStart.Add(time.Duration(tick)*interval + time.Duration(rng.Int64N(int64(time.Millisecond))))
		lat := s.latency
		if s.step != 0 && st.Sub(serverStart) >= s.step {
			lat += s.stepBy
		}
		delay := max(0, lat+time.Duration(rng.Int64N(int64(2*s.jitter)+1))-s.jitter)
		if rng.Float64() < s.loss {
			continue
		}
		out = append(out, snapArrival{tick, st, localAt(st.Add(delay))})
	}
	slices.SortStableFunc(out, func(a, b snapArrival) int { return a.arrival.Compare(b.arrival) })
	kept := out[:0]
	for _, a := range out {
		if len(kept) == 0 || a.tick > kept[len(kept)-1].tick {
			kept = append(kept, a)
		}
	}
	return kept
}

type playResult struct {
	frames, underruns int
	delay, target     time.Duration // means
	// maxSkew is the largest |render advance − local advance| / local
	// advance over frames after the first.
	maxSkew float64
	// jumps counts frames whose render advance was outside 0.9 to 1.1
	// times the local one.
	jumps int
}

// play feeds the stream to a client and renders at fps in the client's
// time from the first arrival on; frames rendered before from are run but
// not measured.
func (s stream) play(t *testing.T, fps int, from time.Duration) playResult {
	c := NewClient(ClientConfig{})
	arr := s.arrivals()
	require.NotEmpty(t, arr)
	frame := time.Second / time.Duration(fps)
	start := arr[0].arrival
	end := localAt(serverStart.Add(s.duration))
	var res playResult
	var delaySum, targetSum, allDelay, allTarget time.Duration
	allFrames := 0
	var prev Interpolation
	next := 0
	for now := start; now.Before(end); now = now.Add(frame) {
		for next < len(arr) && !arr[next].arrival.After(now) {
			feed(t, c, 1, arr[next].tick, arr[next].server, arr[next].arrival)
			next++
		}
		in, ok := c.Interpolate(now)
		require.True(t, ok)
		if !prev.RenderTime.IsZero() {
			adv := in.RenderTime.Sub(prev.RenderTime)
			require.GreaterOrEqual(t, adv, time.Duration(0), "the render time moved backwards at %v", now.Sub(start))
			skew := math.Abs(float64(adv-frame)) / float64(frame)
			res.maxSkew = max(res.maxSkew, skew)
			if skew > slewRate+1e-6 {
				res.jumps++
			}
		}
		prev = in
		allFrames++
		allDelay += in.Delay
		allTarget += in.Target
		if !in.Underrun {
			require.GreaterOrEqual(t, in.Alpha, 0.0)
			require.LessOrEqual(t, in.Alpha, 1.0)
			require.Greater(t, in.Delay, time.Duration(0))
			require.Equal(t, binary.BigEndian.Uint32(in.To.Data), in.To.Tick)
		} else {
			require.LessOrEqual(t, in.Delay, time.Duration(0))
		}
		if now.Sub(start) < from {
			continue
		}
		res.frames++
		if in.Underrun {
			res.underruns++
		}
		delaySum += in.Delay
		targetSum += in.Target
	}
	res.delay = delaySum / time.Duration(res.frames)
	res.target = targetSum / time.Duration(res.frames)
	st := c.Stats()
	require.EqualValues(t, allFrames, st.InterpFrames)
	require.Equal(t, allDelay, st.InterpDelayTotal)
	require.Equal(t, allTarget, st.InterpTargetTotal)
	return res
}

func (r playResult) underrunPct() float64 { return 100 * float64(r.underruns) / float64(r.frames) }

// The render time follows the snapshot stream, so that interpolation holds
// at any latency: 30 Hz snapshots, ±10 ms of jitter, 0 to 20 % loss and
// round trips to 300 ms, rendered at 60 frames a second for a minute
// (measured from the first snapshot on, start-up included). Underruns stay
// under 1 % of frames (3 % at 20 % loss), the buffered lead under three
// snapshot intervals at no loss, and the render time never steps back nor
// runs faster or slower than 1.1 or 0.9 times real time.
func TestInterpolationHoldsAtAnyLatency(t *testing.T) {
	const interval = time.Second / 30
	for _, rtt := range []time.Duration{0, 50 * time.Millisecond, 150 * time.Millisecond, 300 * time.Millisecond} {
		for _, loss := range []float64{0, 0.05, 0.20} {
			t.Run(fmt.Sprintf("rtt%dms/loss%.0f%%", rtt.Milliseconds(), loss*100), func(t *testing.T) {
				s := stream{
					seed: uint64(rtt.Milliseconds())*100 + uint64(loss*100), rate: 30,
					latency: rtt / 2, jitter: 10 * time.Millisecond, loss: loss, duration: time.Minute,
				}
				r := s.play(t, 60, 0)
				t.Logf("underruns %.2f%% of %d frames, mean delay %.1f ms, mean target %.1f ms",
					r.underrunPct(), r.frames, ms(r.delay), ms(r.target))
				require.Zero(t, r.jumps, "render advance off real time by up to %.1f%%", 100*r.maxSkew)
				limit := 1.0
				if loss > 0.1 {
					limit = 3
				}
				require.LessOrEqual(t, r.underrunPct(), limit)
				if loss == 0 {
					require.LessOrEqual(t, r.delay, 3*interval, "the buffered lead does not grow with latency")
				}
			})
		}
	}
}

// When the latency changes under a running stream the render time slews to
// the new target without stepping back, and underruns stop once it has
// settled; when it finds itself far behind (latency fell by more than
// jumpLag), it jumps forward once.
func TestInterpolationFollowsLatencyChanges(t *testing.T) {
	for _, tc := range []struct {
		name  string
		by    time.Duration
		jumps int
	}{
		{"up100ms", 100 * time.Millisecond, 0},
		{"down100ms", -100 * time.Millisecond, 0},
		{"down400ms", -400 * time.Millisecond, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := stream{
				seed: 9, rate: 30, latency: 450 * time.Millisecond, jitter: 10 * time.Millisecond,
				loss: 0.05, duration: 30 * time.Second, step: 10 * time.Second, stepBy: tc.by,
			}
			all := s.play(t, 60, 0)
			require.Equal(t, tc.jumps, all.jumps, "render advance off real time by up to %.1f%%", 100*all.maxSkew)
			// Settled: from 10 s after the change on, as good as ever.
			after := s.play(t, 60, 20*time.Second)
			t.Logf("overall underruns %.2f%%, settled %.2f%%, delay %.1f ms", all.underrunPct(), after.underrunPct(), ms(after.delay))
			require.LessOrEqual(t, after.underrunPct(), 1.0)
			require.LessOrEqual(t, after.delay, 3*time.Second/30)
		})
	}
}

// A new epoch (a room change) keeps the render time going: server times
// are continuous across it, and nothing held from the old room is blended.
func TestInterpolationAcrossEpochs(t *testing.T) {
	c := NewClient(ClientConfig{})
	const interval = time.Second / 30
	var last time.Time
	underruns := 0
	tick, epoch := uint32(1000), uint8(1)
	for i := 0; i < 600; i++ {
		st := serverStart.Add(time.Duration(i) * interval)
		if i == 300 { // the new room counts from its own start
			tick, epoch = 1, 2
		}
		now := localAt(st.Add(40 * time.Millisecond))
		feed(t, c, epoch, tick, st, now)
		tick++
		for _, f := range []time.Duration{0, interval / 2} {
			in, ok := c.Interpolate(now.Add(f))
			require.True(t, ok)
			require.False(t, in.RenderTime.Before(last))
			last = in.RenderTime
			if in.Underrun {
				underruns++
			}
			if i >= 300 {
				require.Less(t, in.From.Tick, uint32(1000), "only the new room's snapshots are blended")
			}
		}
	}
	require.LessOrEqual(t, underruns, 4)
}

func TestLossCover(t *testing.T) {
	under := func(p, x float64) float64 {
		m, f := math.Floor(x), x-math.Floor(x)
		return (1-f)*math.Pow(p, m+1) + f*math.Pow(p, m+2)
	}
	for _, tc := range []struct{ p, x float64 }{
		{0, 0}, {underrunTarget, 0}, {0.05, 0.968}, {0.2, 2.625}, {0.5, 6.97}, {0.99, maxCover},
	} {
		x := lossCover(tc.p)
		require.InDelta(t, tc.x, x, 0.01, "p %v", tc.p)
		if x > 0 && x < maxCover {
			require.InDelta(t, underrunTarget, under(tc.p, x), 1e-9, "p %v: the smallest cover meets the target exactly", tc.p)
		}
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkInterpolate is one render frame of 6.4 KB snapshots: the frame
// search and the two copies.
func BenchmarkInterpolate(b *testing.B) {
	c := NewClient(ClientConfig{})
	const interval = time.Second / 30
	var env []byte
	for tick := uint32(1); tick <= 2*playoutWindow; tick++ {
		st := serverStart.Add(time.Duration(tick) * interval)
		env = unreliable.AppendEnvelope(env[:0], unreliable.Envelope{Time: st.UnixNano()})
		env = arenaLike(env, tick)
		_, _, _ = c.snaps.add(tick, 1, env, localAt(st.Add(50*time.Millisecond)))
	}
	now := localAt(serverStart.Add(2 * playoutWindow * interval))
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Microsecond)
		c.Interpolate(now)
	}
}

// BenchmarkInterpArrival is the timing work per snapshot arrival: the
// window's percentile, stride and loss.
func BenchmarkInterpArrival(b *testing.B) {
	var p playout
	const interval = time.Second / 30
	rng := rand.New(rand.NewPCG(1, 2))
	tick := uint32(1)
	b.ReportAllocs()
	for b.Loop() {
		st := serverStart.Add(time.Duration(tick) * interval)
		p.arrive(tick, st.UnixNano(), localAt(st.Add(time.Duration(rng.Int64N(int64(20*time.Millisecond))))), tick == 1)
		tick++
	}
}

// The playout's stream offset and lateness margin, kept in one pass, are
// what sorting the window gives: its largest offset, and that less the
// 1st percentile (the ⌈n/100⌉-th smallest), for every fill of the window.
func TestPlayoutMarginMatchesSortedWindow(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	for round := range 300 {
		var p playout
		n := 1 + rng.IntN(2*playoutWindow)
		for i := range n {
			p.win[p.next] = arrival{s: rng.Int64N(1000) - 500, ticks: uint32(1 + i%3)}
			if round%5 == 0 {
				p.win[p.next].s = int64(i % 4) // many equal offsets
			}
			p.next = (p.next + 1) % playoutWindow
			p.n = min(p.n+1, playoutWindow)
			p.update()
			s := make([]int64, p.n)
			for j, a := range p.win[:p.n] {
				s[j] = a.s
			}
			slices.Sort(s)
			require.Equal(t, s[len(s)-1], p.stream, "round %d, %d arrivals", round, i+1)
			require.Equal(t, s[len(s)-1]-s[(len(s)+99)/100-1], p.late, "round %d, %d arrivals", round, i+1)
		}
	}
}
