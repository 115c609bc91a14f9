package impair_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode/transport/impair"
)

func TestParseProfile(t *testing.T) {
	ms := time.Millisecond
	same := func(c impair.Config) impair.Profile { return impair.Profile{ToServer: c, ToClient: c} }
	cases := []struct {
		in   string
		want impair.Profile
	}{
		{"", impair.Profile{}},
		{"  ", impair.Profile{}},
		{"rtt=150ms,jitter=10ms,loss=5%", same(impair.Config{Delay: 75 * ms, Jitter: 10 * ms, Loss: 0.05})},
		{" loss = 0.2 , rtt = 0 ", same(impair.Config{Loss: 0.2})},
		{"rtt=3ns", same(impair.Config{Delay: 1})}, // rounded down
		{"delay=40ms", same(impair.Config{Delay: 40 * ms})},
		{"dup=2%,reorder=0.01,seed=0x10", same(impair.Config{Duplicate: 0.02, Reorder: 0.01, Seed: 16})},
		{"loss=100%,seed=7", same(impair.Config{Loss: 1, Seed: 7})},
		{"loss=0.5%", same(impair.Config{Loss: 0.005})},
		{"jitter=1m", same(impair.Config{Jitter: time.Minute})},
	}
	for _, tc := range cases {
		got, err := impair.ParseProfile(tc.in)
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got, tc.in)
	}
	p, err := impair.ParseProfile("rtt=150ms,jitter=10ms")
	require.NoError(t, err)
	require.Equal(t, 150*ms, p.RTT())
}

func TestParseProfileErrors(t *testing.T) {
	for _, in := range []string{
		"rtt",           // not key=value
		"rtt=",          // no value
		"=5ms",          // no key
		"rtt=150ms,",    // empty setting
		"latency=150ms", // unknown key
		"rtt=1s,rtt=2s", // twice
		"rtt=100ms,delay=50ms",
		"rtt=150",   // no unit
		"rtt=-1ms",  // negative
		"jitter=2m", // over a minute
		"loss=5",    // a bare number is a fraction
		"loss=101%", // over 100 %
		"loss=-1%",  // negative
		"loss=NaN",  // not a number in range
		"loss=five", // not a number
		"dup=1.5",   // over 1
		"seed=-1",   // not unsigned
	} {
		_, err := impair.ParseProfile(in)
		require.Error(t, err, in)
		require.Contains(t, err.Error(), "impair: profile", in)
	}
}
