package impair

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// maxProfileDuration bounds a profile's durations, to catch a typo such as
// "150s" for "150ms".
const maxProfileDuration = time.Minute

// Profile is the impairment of a network path, one Config per direction:
// what a Proxy's ProxyConfig.ToServer and ToClient take.
type Profile struct {
	ToServer, ToClient Config
}

// RTT is the path's round-trip delay without jitter: both directions'
// Delay added.
func (p Profile) RTT() time.Duration { return p.ToServer.Delay + p.ToClient.Delay }

// ParseProfile parses a network profile such as
// "rtt=150ms,jitter=10ms,loss=5%", so that tools and tests describe paths
// alike. A profile is comma-separated key=value settings, in any order, each
// key at most once; spaces around keys and values are ignored, and the empty
// string is the unimpaired path. Both directions get the same settings:
//
//	rtt=D      round-trip delay: each direction's Delay is D/2 (rounded
//	           down to the nanosecond). Not together with delay.
//	delay=D    one-way delay: each direction's Delay is D, so the round
//	           trip is 2D. Not together with rtt.
//	jitter=D   each direction's Jitter: every packet waits its Delay plus a
//	           uniform draw from [-D, +D], never less than zero. The
//	           directions draw independently, so a round trip varies by up
//	           to ±2D.
//	loss=P     each direction's Loss: a packet is lost with probability P
//	           each way, so a request and its reply both arrive with
//	           probability (1-P)².
//	dup=P      each direction's Duplicate.
//	reorder=P  each direction's Reorder.
//	seed=N     both directions' Seed, in decimal or 0x hexadecimal (a
//	           Proxy derives each socket's own seed from it). Default 0.
//
// D is a duration in time.ParseDuration's syntax ("150ms", "0.2s", "0"),
// from 0 to 1m. P is a percentage with a percent sign ("5%", "0.5%", from
// 0% to 100%) or a fraction without one ("0.05", from 0 to 1), so "loss=5"
// is an error rather than certain loss.
func ParseProfile(s string) (Profile, error) {
	var cfg Config
	seen := map[string]bool{}
	fail := func(format string, args ...any) (Profile, error) {
		return Profile{}, fmt.Errorf("impair: profile %q: %s", s, fmt.Sprintf(format, args...))
	}
	if strings.TrimSpace(s) == "" {
		return Profile{}, nil
	}
	for item := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(item, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || v == "" {
			return fail("setting %q is not key=value", strings.TrimSpace(item))
		}
		if seen[k] {
			return fail("%s given twice", k)
		}
		seen[k] = true
		var err error
		switch k {
		case "rtt":
			var d time.Duration
			d, err = parseProfileDuration(v)
			cfg.Delay = d / 2
		case "delay":
			cfg.Delay, err = parseProfileDuration(v)
		case "jitter":
			cfg.Jitter, err = parseProfileDuration(v)
		case "loss":
			cfg.Loss, err = parseProbability(v)
		case "dup":
			cfg.Duplicate, err = parseProbability(v)
		case "reorder":
			cfg.Reorder, err = parseProbability(v)
		case "seed":
			cfg.Seed, err = strconv.ParseUint(v, 0, 64)
		default:
			return fail("unknown setting %q (want rtt, delay, jitter, loss, dup, reorder or seed)", k)
		}
		if err != nil {
			return fail("%s: %v", k, err)
		}
	}
	if seen["rtt"] && seen["delay"] {
		return fail("rtt and delay both given; rtt=D is delay=D/2")
	}
	return Profile{ToServer: cfg, ToClient: cfg}, nil
}

func parseProfileDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, err
	}
	if d < 0 || d > maxProfileDuration {
		return 0, fmt.Errorf("%v not in 0..%v", d, maxProfileDuration)
	}
	return d, nil
}

func parseProbability(v string) (float64, error) {
	num, pct := strings.CutSuffix(v, "%")
	p, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", v)
	}
	limit := 1.0
	if pct {
		limit = 100
	}
	if !(p >= 0 && p <= limit) { // also catches NaN
		if pct {
			return 0, fmt.Errorf("%s not in 0%%..100%%", v)
		}
		return 0, fmt.Errorf("%s not in 0..1 (a percentage needs a %% sign)", v)
	}
	if pct {
		p /= 100
	}
	return p, nil
}
