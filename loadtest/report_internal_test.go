package loadtest

import (
	"slices"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/stretchr/testify/require"
)

// Bots are dealt out by weight, interleaved, each run of total-weight
// bots holding every profile its weight's times.
func TestDealProfiles(t *testing.T) {
	mix, err := ParseNetMix("wifi:70,mobile:20,bad:10")
	require.NoError(t, err)
	deal := dealProfiles(mix, 20)
	for start := 0; start < 20; start += 10 {
		count := [3]int{}
		for _, j := range deal[start : start+10] {
			count[j]++
		}
		require.Equal(t, [3]int{7, 2, 1}, count, "bots %d to %d", start, start+9)
	}
	require.Equal(t, []int{0, 1, 0, 1}, dealProfiles([]NetProfile{{Weight: 5}, {Weight: 5}}, 4), "consecutive bots, who share a room, alternate")
	require.Equal(t, []int{0, 1, 0, 0, 1, 0}, dealProfiles([]NetProfile{{Weight: 2}, {Weight: 1}}, 6))
	require.Equal(t, []int{0, 0, 0}, dealProfiles([]NetProfile{{}}, 3), "weight 0 counts as 1")
	require.Nil(t, dealProfiles(nil, 3))
}

// -net takes a preset or a profile string; -net-mix presets with weights,
// and it says what is wrong with a bad one.
func TestParseNet(t *testing.T) {
	ps, err := ParseNet("mobile")
	require.NoError(t, err)
	require.Len(t, ps, 1)
	require.Equal(t, "mobile", ps[0].Name)
	require.Equal(t, 40*time.Millisecond, ps[0].Profile.ToClient.Delay)

	ps, err = ParseNet("loss=5%,delay=40ms,jitter=10ms,dup=1%,reorder=2%")
	require.NoError(t, err)
	require.Equal(t, "custom", ps[0].Name)
	p := ps[0].Profile
	require.Equal(t, p.ToServer, p.ToClient, "both ways")
	require.InDelta(t, 0.05, p.ToServer.Loss, 1e-9)
	require.Equal(t, 40*time.Millisecond, p.ToServer.Delay)
	require.Equal(t, 10*time.Millisecond, p.ToServer.Jitter)
	require.InDelta(t, 0.01, p.ToServer.Duplicate, 1e-9)
	require.InDelta(t, 0.02, p.ToServer.Reorder, 1e-9)

	ps, err = ParseNet("")
	require.NoError(t, err)
	require.Nil(t, ps)
	_, err = ParseNet("wlan")
	require.ErrorContains(t, err, "lan, wifi, mobile, bad", "names the presets")

	mix, err := ParseNetMix(" lan:1 , bad:3 ")
	require.NoError(t, err)
	require.Equal(t, []string{"lan", "bad"}, []string{mix[0].Name, mix[1].Name})
	require.Equal(t, 3, mix[1].Weight)
	for bad, msg := range map[string]string{
		"wifi":             "not preset:weight",
		"wifi:0":           "not a positive integer",
		"wifi:x":           "not a positive integer",
		"cable:1":          `no preset "cable"`,
		"wifi:1,wifi:2":    "given twice",
		"wifi:1,,mobile:1": "not preset:weight",
	} {
		_, err := ParseNetMix(bad)
		require.ErrorContains(t, err, msg, bad)
	}
	for _, pr := range Presets() {
		require.True(t, impairs(pr.Profile.ToServer) && impairs(pr.Profile.ToClient), pr.Name)
	}
}

// Each socket of a bot draws its own seeds, each direction its own.
func TestNetPathSeeds(t *testing.T) {
	p := &netPath{seed: 1}
	s1, r1 := p.configs()
	s2, r2 := p.configs()
	seeds := []uint64{s1.Seed, r1.Seed, s2.Seed, r2.Seed}
	slices.Sort(seeds)
	require.Len(t, slices.Compact(seeds), 4)
}

// Histogram buckets are round, adjoining and hold every value; a tail
// past the 99.5th percentile goes into one last bucket.
func TestBuckets(t *testing.T) {
	h := newDelayHistogram()
	for v := range 1000 {
		require.NoError(t, h.RecordValue(int64(30_000+v*10))) // 30 to 40 ms
	}
	require.NoError(t, h.RecordValue(900_000)) // one at 900 ms
	bs := buckets(h)
	require.LessOrEqual(t, len(bs), maxBuckets)
	var n int64
	for i, b := range bs {
		n += b.Count
		if i > 0 {
			require.Equal(t, bs[i-1].HighMs, b.LowMs)
		}
	}
	require.EqualValues(t, 1001, n)
	require.Equal(t, 30.0, bs[0].LowMs)
	last := bs[len(bs)-1]
	require.EqualValues(t, 1, last.Count)
	require.InDelta(t, 900, last.HighMs, 1, "the tail reaches the largest value")
	require.Equal(t, 0.5, bs[0].HighMs-bs[0].LowMs, "a round width")

	require.Empty(t, buckets(hdrhistogram.New(1, 1000, 3)))
	require.NotNil(t, buckets(hdrhistogram.New(1, 1000, 3)), "an empty list, not null, in JSON")
}

// A final sample soon after the last one is folded into it; rates hold.
func TestSampleFolds(t *testing.T) {
	r := &run{secRTT: newDelayHistogram(), lastRTT: newDelayHistogram()}
	r.snapshots.Store(30)
	_ = r.secRTT.RecordValue(1000)
	r.sample(time.Second, false)
	r.snapshots.Store(60)
	_ = r.secRTT.RecordValue(3000)
	r.sample(2*time.Second, false)
	r.snapshots.Store(66)
	r.sample(2200*time.Millisecond, true)
	require.Len(t, r.series, 2)
	last := r.series[1]
	require.Equal(t, 2.2, last.T)
	require.Equal(t, 1.2, last.Interval)
	require.InDelta(t, 36/1.2, last.SnapshotsPerSec, 0.01)
	require.EqualValues(t, 1, last.Pings, "the folded second's ping")
	require.Equal(t, 3.0, last.RTTP50)
	require.Equal(t, 30.0, r.series[0].SnapshotsPerSec)
}

// Rooms of a prefix sort by number.
func TestCompareNames(t *testing.T) {
	names := []string{"r-10", "r-2", "a", "r-1", "q-3"}
	slices.SortFunc(names, compareNames)
	require.Equal(t, []string{"a", "q-3", "r-1", "r-2", "r-10"}, names)
}

// Chart axes end on round numbers.
func TestNiceAxis(t *testing.T) {
	for _, c := range []struct{ max, top, step float64 }{
		{0, 1, 0.25}, {7, 8, 2}, {100, 100, 20}, {0.76, 0.8, 0.2}, {381, 400, 100}, {15319, 20000, 5000},
	} {
		top, step := niceAxis(c.max)
		require.InDelta(t, c.top, top, 1e-9, "max %v", c.max)
		require.InDelta(t, c.step, step, 1e-9, "max %v", c.max)
	}
	require.Equal(t, "15.3k", num(15319))
	require.Equal(t, "0.25", num(0.25))
	require.Equal(t, "2.5", num(2.5))
	require.Equal(t, "1.5M", num(1.5e6))
}
