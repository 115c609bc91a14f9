package loadtest

import (
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/roomwire/roomwire/netcode/transport/impair"
)

// NetProfile is a network path a share of the bots play behind
// (Config.Networks), so that one run shows how players on good and bad
// networks fare side by side.
//
// A bot behind a profile dials its transport itself, as with a blackout,
// over a UDP socket of its own made by impair.NewDuplex: what the bot sends
// suffers Profile.ToServer, and what it receives suffers Profile.ToClient
// as it arrives at the bot's socket, since the server's end is not ours to
// wrap. Each direction is impaired once, by its own Config with its own
// random source, so loss=5% loses 5 % of the packets each way and delay=40ms
// adds 40 ms each way (80 ms to a round trip). Every socket a bot opens (a
// reconnect's too) draws its own seeds. Profiles impair UDP: quic:// and
// kcp://; a bot on ws:// or wss:// behind a profile that impairs fails to
// dial.
type NetProfile struct {
	// Name names the profile in the report: a preset's name (Presets), or
	// "custom" for a profile string.
	Name string `json:"name"`
	// Spec is the profile in impair.ParseProfile's syntax, such as
	// "delay=40ms,jitter=10ms,loss=2%".
	Spec string `json:"spec"`
	// Weight is the profile's share of the bots relative to the other
	// profiles' weights. Zero counts as 1.
	Weight int `json:"weight"`
	// Profile is Spec parsed, the impairment each way.
	Profile impair.Profile `json:"-"`
}

// presets are the profiles Presets returns, by name. delay is one way: a
// round trip takes twice it.
var presets = []struct{ name, spec string }{
	{"lan", "delay=1ms"},
	{"wifi", "delay=8ms,jitter=4ms,loss=0.5%"},
	{"mobile", "delay=40ms,jitter=15ms,loss=2%,reorder=0.5%"},
	{"bad", "delay=120ms,jitter=40ms,loss=8%,dup=1%,reorder=2%"},
}

// Presets are the named network profiles ParseNet and ParseNetMix know,
// from the best path to the worst (each direction's delay, so the round
// trip is twice it):
//
//	lan     delay=1ms                                        (RTT ~2 ms)
//	wifi    delay=8ms,jitter=4ms,loss=0.5%                   (RTT ~16 ms)
//	mobile  delay=40ms,jitter=15ms,loss=2%,reorder=0.5%      (RTT ~80 ms)
//	bad     delay=120ms,jitter=40ms,loss=8%,dup=1%,reorder=2% (RTT ~240 ms)
//
// The slice is the caller's own; each has Weight 1.
func Presets() []NetProfile {
	out := make([]NetProfile, 0, len(presets))
	for _, p := range presets {
		prof, err := impair.ParseProfile(p.spec)
		if err != nil {
			panic("loadtest: preset " + p.name + ": " + err.Error())
		}
		out = append(out, NetProfile{Name: p.name, Spec: p.spec, Weight: 1, Profile: prof})
	}
	return out
}

// Preset returns the preset named name.
func Preset(name string) (NetProfile, bool) {
	for _, p := range Presets() {
		if p.Name == name {
			return p, true
		}
	}
	return NetProfile{}, false
}

// presetNames lists the presets' names for error messages.
func presetNames() string {
	names := make([]string, len(presets))
	for i, p := range presets {
		names[i] = p.name
	}
	return strings.Join(names, ", ")
}

// ParseNet parses the bot client's -net: a preset's name ("mobile"), or a
// profile in impair.ParseProfile's syntax ("loss=5%,delay=40ms,jitter=10ms,
// dup=1%,reorder=2%"), named "custom". Every bot plays behind it. The
// empty string is no profile (nil).
func ParseNet(s string) ([]NetProfile, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if p, ok := Preset(s); ok {
		return []NetProfile{p}, nil
	}
	prof, err := impair.ParseProfile(s)
	if err != nil {
		return nil, fmt.Errorf("loadtest: -net: %w (or a preset: %s)", err, presetNames())
	}
	return []NetProfile{{Name: "custom", Spec: s, Weight: 1, Profile: prof}}, nil
}

// ParseNetMix parses the bot client's -net-mix: presets with weights,
// "wifi:70,mobile:20,bad:10", each name at most once and each weight a
// positive integer. The bots are dealt out by weight (see
// Config.Networks). The empty string is no profile (nil).
func ParseNetMix(s string) ([]NetProfile, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []NetProfile
	for item := range strings.SplitSeq(s, ",") {
		name, w, ok := strings.Cut(strings.TrimSpace(item), ":")
		name, w = strings.TrimSpace(name), strings.TrimSpace(w)
		if !ok {
			return nil, fmt.Errorf("loadtest: -net-mix %q: %q is not preset:weight", s, strings.TrimSpace(item))
		}
		p, found := Preset(name)
		if !found {
			return nil, fmt.Errorf("loadtest: -net-mix %q: no preset %q (want %s)", s, name, presetNames())
		}
		weight, err := strconv.Atoi(w)
		if err != nil || weight <= 0 {
			return nil, fmt.Errorf("loadtest: -net-mix %q: weight %q of %s is not a positive integer", s, w, name)
		}
		for _, q := range out {
			if q.Name == name {
				return nil, fmt.Errorf("loadtest: -net-mix %q: %s given twice", s, name)
			}
		}
		p.Weight = weight
		out = append(out, p)
	}
	return out, nil
}

// dealProfiles assigns each of n bots the index of its profile in ps by
// smooth weighted round robin over the weights divided by their greatest
// common divisor: every run of total-weight consecutive bots holds each
// profile its weight's number of times, interleaved (70:20:10 deals
// 7, 2 and 1 of every 10 bots), so that consecutive bots, who share a
// room, come from different profiles. It returns nil for no profiles.
func dealProfiles(ps []NetProfile, n int) []int {
	if len(ps) == 0 {
		return nil
	}
	w := make([]int, len(ps))
	g := 0
	for i, p := range ps {
		w[i] = max(p.Weight, 1)
		g = gcd(g, w[i])
	}
	total := 0
	for i := range w {
		w[i] /= g
		total += w[i]
	}
	cur := make([]int, len(ps))
	out := make([]int, n)
	for b := range out {
		best := 0
		for i := range cur {
			cur[i] += w[i]
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		out[b] = best
	}
	return out
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// impairs reports whether c changes anything a socket carries.
func impairs(c impair.Config) bool {
	return c.Loss > 0 || c.Delay > 0 || c.Jitter > 0 || c.Reorder > 0 || c.Duplicate > 0
}

// netPath is one bot's network: its blackouts and its profile. Each socket
// it opens draws the next number, from which its seeds derive.
type netPath struct {
	network *impair.Network // nil: no blackouts
	profile impair.Profile
	seed    uint64 // the bot's own
	sockets atomic.Uint64
}

// configs returns the send and receive Configs of the path's next socket.
func (p *netPath) configs() (send, receive impair.Config) {
	n := p.sockets.Add(1)
	send, receive = p.profile.ToServer, p.profile.ToClient
	send.Network = p.network
	send.Seed = splitmix64(send.Seed ^ splitmix64(p.seed^(n<<1)))
	receive.Seed = splitmix64(receive.Seed ^ splitmix64(p.seed^(n<<1|1)))
	return send, receive
}

// splitmix64 is one step of SplitMix64, a good 64-bit mixer.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// ProfileFigures are a run's figures for the bots behind one network
// profile (Config.Networks), so that a mix of networks can be compared.
type ProfileFigures struct {
	// Name and Spec are the profile's (NetProfile).
	Name string `json:"name"`
	Spec string `json:"spec"`
	// Bots is how many bots were dealt this profile; Connected how many
	// connections of theirs joined a room (with Churn or Rejoin, more than
	// Bots).
	Bots      int `json:"bots"`
	Connected int `json:"connected"`
	// RTT is the percentiles of these bots' reliable ping round trips.
	RTT Percentiles `json:"rtt_ms"`
	// LossPercent is the loss the bots' clients measured on the
	// bot-to-server direction: of the datagrams they sent (inputs and
	// snapshot acks), the share the server never acknowledged, from
	// netcode's ack bookkeeping (the counts behind Stats.LossPercent,
	// without its smoothing, which starts at zero and lags in a short
	// run). A client counts a datagram lost once it has gone a second
	// unacknowledged, so a bot's last second is still undecided when it
	// stops; the figure therefore takes, per bot, DatagramsLost at the
	// run's last once-a-second sample of it and DatagramsSent at the
	// sample before, a second earlier, whose datagrams had all been
	// decided by then. DatagramsSent and DatagramsLost are those, summed
	// over the bots; a bot that played less than two samples adds
	// nothing. The other direction's loss shows in DeliveryPercent.
	LossPercent   float64 `json:"loss_pct"`
	DatagramsSent uint64  `json:"datagrams_sent"`
	DatagramsLost uint64  `json:"datagrams_lost"`
	// SnapshotsReceived and SnapshotsExpected are as in Report, for these
	// bots; DeliveryPercent is the first as a percentage of the second,
	// which the server-to-bot direction's loss lowers.
	SnapshotsReceived int64   `json:"snapshots_received"`
	SnapshotsExpected int64   `json:"snapshots_expected"`
	DeliveryPercent   float64 `json:"delivery_pct"`
	// InterpUnderrunPercent is the share of these bots' rendered frames
	// with no snapshot after the render time.
	InterpUnderrunPercent float64 `json:"interp_underrun_pct"`
}

// profTally accumulates one profile's figures (under run.mu).
type profTally struct {
	bots, connected   int
	rtt               *hdrhistogram.Histogram // microseconds
	sent, lost        uint64                  // the decided datagrams (see LossPercent)
	received          int64
	expected          float64
	frames, underruns uint64
}

// figures returns the profile's figures.
func (t *profTally) figures(p NetProfile) ProfileFigures {
	f := ProfileFigures{
		Name: p.Name, Spec: p.Spec, Bots: t.bots, Connected: t.connected,
		RTT:           percentiles(t.rtt, true),
		DatagramsSent: t.sent, DatagramsLost: t.lost,
		SnapshotsReceived: t.received, SnapshotsExpected: int64(t.expected + 0.5),
	}
	if t.sent > 0 {
		f.LossPercent = round2(100 * float64(min(t.lost, t.sent)) / float64(t.sent))
	}
	if t.expected > 0 {
		f.DeliveryPercent = round2(100 * float64(t.received) / t.expected)
	}
	if t.frames > 0 {
		f.InterpUnderrunPercent = round2(100 * float64(t.underruns) / float64(t.frames))
	}
	return f
}
