package loadtest

import (
	"cmp"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/roomwire/roomwire/netcode"
)

// Second is one sample of a run's time series (Report.Series), taken about
// once a second while the bots play, and once more when the last bot
// stopped (folded into the one before when less than half a second came
// after it). Rates are over the interval since the previous sample
// (Interval seconds), so a late tick does not show as a spike.
type Second struct {
	// T is the end of the interval, in seconds since the run started;
	// Interval its length in seconds.
	T        float64 `json:"t_s"`
	Interval float64 `json:"interval_s"`
	// Bots is how many bots were in their rooms at the sample.
	Bots int `json:"bots"`
	// Pings counts the reliable ping round trips that ended in the
	// interval; RTTP50 and RTTP99 are their percentiles in milliseconds,
	// zero without any.
	Pings  int64   `json:"pings"`
	RTTP50 float64 `json:"rtt_p50_ms"`
	RTTP99 float64 `json:"rtt_p99_ms"`
	// SnapshotsPerSec is the snapshots the bots received per second;
	// ExpectedPerSec what they would have received at their rooms' tick
	// rate over the time they spent in their rooms in the interval.
	SnapshotsPerSec float64 `json:"snapshots_per_s"`
	ExpectedPerSec  float64 `json:"expected_per_s"`
	// BytesDownPerSec and BytesUpPerSec are the payload bytes the bots
	// received and sent per second (netcode.Stats BytesReceived and
	// BytesSent, summed over the bots, differenced).
	BytesDownPerSec float64 `json:"bytes_down_per_s"`
	BytesUpPerSec   float64 `json:"bytes_up_per_s"`
	// FramesPerSec and UnderrunsPerSec are the frames the bots rendered
	// with Client.Interpolate per second and those of them that were
	// interpolation underruns.
	FramesPerSec    float64 `json:"frames_per_s"`
	UnderrunsPerSec float64 `json:"underruns_per_s"`
	// LossPercent is, of the bots' datagrams the server acknowledged or
	// that the bots found lost in the interval, the share lost; zero
	// without any. A datagram is found lost a second after it was sent,
	// acknowledged a round trip after, so the figure is right while the
	// bots play on, and low in their first second (see
	// ProfileFigures.LossPercent).
	LossPercent float64 `json:"loss_pct"`
}

// Bucket is one bar of a histogram in a Report: Count values from LowMs
// (inclusive) to HighMs (exclusive; the last bucket's HighMs is the
// largest value, inclusive), in milliseconds.
type Bucket struct {
	LowMs  float64 `json:"lo_ms"`
	HighMs float64 `json:"hi_ms"`
	Count  int64   `json:"count"`
}

// RoomDelivery is one room's snapshot delivery (Report.Rooms): of the
// snapshots its bots should have received at the room's tick rate over the
// time each spent in it, the share they did.
type RoomDelivery struct {
	Room string `json:"room"`
	// Bots counts the bots' stays in the room (with Churn a bot comes
	// back, each time counted).
	Bots              int     `json:"bots"`
	SnapshotsReceived int64   `json:"snapshots_received"`
	SnapshotsExpected int64   `json:"snapshots_expected"`
	DeliveryPercent   float64 `json:"delivery_pct"`
}

// roomTally accumulates one room's delivery (under run.mu).
type roomTally struct {
	bots     int
	received int64
	expected float64
}

// liveBot is a bot in its room, whose client's counters the sampler reads.
// samples counts its readings; sentBefore is DatagramsSent at the one
// before the last; decidedSent and decidedLost are DatagramsSent a reading
// before the last and DatagramsLost at the last (see
// ProfileFigures.LossPercent).
type liveBot struct {
	cl                       *netcode.Client
	tick                     int
	joined                   time.Time
	samples                  int
	sentBefore               uint64
	decidedSent, decidedLost uint64
}

// totals are the cumulative counters the series differences: those of the
// bots that stopped plus those of the bots in their rooms.
type totals struct {
	down, up, frames, underruns, acked, lost uint64
	snapshots                                int64
	expected                                 float64 // snapshots, at the tick rate over the time in a room
}

func (t *totals) add(st netcode.Stats) {
	t.down += st.BytesReceived
	t.up += st.BytesSent
	t.frames += st.InterpFrames
	t.underruns += st.InterpUnderruns
	t.acked += st.DatagramsAcked
	t.lost += st.DatagramsLost
}

// sample appends the series' next Second, at elapsed since the start. It
// runs on the run's sampling goroutine, and once more, final, after the
// bots stopped; a final sample less than half a second after the one
// before replaces that one, covering both intervals. A bot merges its
// counters into the finished totals and leaves live in one step under
// r.mu, so the sums only grow.
func (r *run) sample(elapsed time.Duration, final bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	cur := r.finished
	cur.snapshots = r.snapshots.Load()
	cur.expected = r.expected
	bots := 0
	for i := range r.live {
		lb := &r.live[i]
		if lb.cl == nil {
			continue
		}
		st := lb.cl.Stats()
		cur.add(st)
		bots++
		cur.expected += now.Sub(lb.joined).Seconds() * float64(lb.tick)
		if lb.samples > 0 {
			lb.decidedSent, lb.decidedLost = lb.sentBefore, st.DatagramsLost
		}
		lb.sentBefore = st.DatagramsSent
		lb.samples++
	}
	prev, prevT := r.prevTotals, r.prevT
	if final && elapsed-prevT < 500*time.Millisecond && len(r.series) > 0 {
		r.series = r.series[:len(r.series)-1]
		prev, prevT = r.lastFrom, r.lastFromT
		r.lastRTT.Merge(r.secRTT)
	} else {
		r.lastRTT, r.secRTT = r.secRTT, r.lastRTT
	}
	r.secRTT.Reset()
	rtt := r.lastRTT // the interval's round trips
	dt := (elapsed - prevT).Seconds()
	if dt <= 0 {
		return
	}
	rate := func(now, before uint64) float64 {
		if now < before {
			return 0
		}
		return round2(float64(now-before) / dt)
	}
	s := Second{
		T:               round2(elapsed.Seconds()),
		Interval:        math.Round(dt*1e4) / 1e4, // fine enough that rate × Interval gives the count back
		Bots:            bots,
		Pings:           rtt.TotalCount(),
		SnapshotsPerSec: round2(float64(cur.snapshots-prev.snapshots) / dt),
		ExpectedPerSec:  round2(max(cur.expected-prev.expected, 0) / dt),
		BytesDownPerSec: rate(cur.down, prev.down),
		BytesUpPerSec:   rate(cur.up, prev.up),
		FramesPerSec:    rate(cur.frames, prev.frames),
		UnderrunsPerSec: rate(cur.underruns, prev.underruns),
	}
	if s.Pings > 0 {
		p := percentiles(rtt, false)
		s.RTTP50, s.RTTP99 = p.P50, p.P99
	}
	if cur.acked >= prev.acked && cur.lost >= prev.lost {
		if n := (cur.acked - prev.acked) + (cur.lost - prev.lost); n > 0 {
			s.LossPercent = round2(100 * float64(cur.lost-prev.lost) / float64(n))
		}
	}
	r.series = append(r.series, s)
	r.lastFrom, r.lastFromT = prev, prevT
	r.prevTotals, r.prevT = cur, elapsed
}

// maxBuckets bounds a histogram's buckets in a Report.
const maxBuckets = 24

// buckets cuts h (microseconds) into at most maxBuckets bars of a round
// width in milliseconds (1, 2 or 5 × a power of ten) from the smallest
// value to the 99.5th percentile; what lies above goes into a last bar
// reaching to the largest value. It returns an empty slice for an empty h.
func buckets(h *hdrhistogram.Histogram) []Bucket {
	out := []Bucket{}
	if h.TotalCount() == 0 {
		return out
	}
	lo, hi, top := h.Min(), h.ValueAtQuantile(99.5), h.Max()
	width := niceStep(float64(max(hi-lo, 1)) / (maxBuckets - 2))
	start := math.Floor(float64(lo)/width) * width
	n := min(int(math.Floor((float64(hi)-start)/width))+1, maxBuckets-1)
	counts := make([]int64, n+1)
	for _, bar := range h.Distribution() {
		if bar.Count == 0 {
			continue
		}
		v := float64(bar.From+bar.To) / 2
		i := int((v - start) / width)
		counts[min(max(i, 0), n)] += bar.Count
	}
	ms := func(us float64) float64 { return math.Round(us) / 1000 }
	for i, c := range counts[:n] {
		out = append(out, Bucket{LowMs: ms(start + float64(i)*width), HighMs: ms(start + float64(i+1)*width), Count: c})
	}
	if c := counts[n]; c > 0 {
		out = append(out, Bucket{LowMs: ms(start + float64(n)*width), HighMs: ms(max(float64(top), start+float64(n)*width)), Count: c})
	}
	return out
}

// niceStep is the smallest of 1, 2 and 5 × 10^k that is at least x, and
// at least 1 (one microsecond).
func niceStep(x float64) float64 {
	if x <= 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= x {
			return m * p
		}
	}
	return 10 * p
}

// roomDeliveries returns the rooms' figures in the order of their names,
// rooms of one prefix by number ("r-2" before "r-10").
func roomDeliveries(rooms map[string]*roomTally) []RoomDelivery {
	out := make([]RoomDelivery, 0, len(rooms))
	for name, t := range rooms {
		d := RoomDelivery{Room: name, Bots: t.bots, SnapshotsReceived: t.received, SnapshotsExpected: int64(t.expected + 0.5)}
		if t.expected > 0 {
			d.DeliveryPercent = round2(100 * float64(t.received) / t.expected)
		}
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b RoomDelivery) int { return compareNames(a.Room, b.Room) })
	return out
}

// compareNames orders names with a common prefix by their numeric tails.
func compareNames(a, b string) int {
	pa, na := splitNumber(a)
	pb, nb := splitNumber(b)
	if c := strings.Compare(pa, pb); c != 0 || na < 0 || nb < 0 {
		if c != 0 {
			return c
		}
		return strings.Compare(a, b)
	}
	return cmp.Compare(na, nb)
}

// splitNumber splits "name-12" into "name-" and 12; n is -1 without a
// numeric tail.
func splitNumber(s string) (prefix string, n int) {
	i := len(s)
	for i > 0 && s[i-1] >= '0' && s[i-1] <= '9' {
		i--
	}
	if i == len(s) || len(s)-i > 9 {
		return s, -1
	}
	n = 0
	for _, c := range s[i:] {
		n = 10*n + int(c-'0')
	}
	return s[:i], n
}
