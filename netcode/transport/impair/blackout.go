package impair

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
)

// maxBlackoutDuration bounds the durations of a parsed blackout, to catch
// a typo such as "3h" for "3s" while leaving room for long soaks.
const maxBlackoutDuration = 24 * time.Hour

// Blackout is a window in which a host's network carries nothing, as when a
// phone drives through a tunnel or a NAT rebinds: every packet either way is
// lost and TCP connections stall. Times count from the Network's origin.
// The zero Blackout never darkens anything.
type Blackout struct {
	// Start is when the (first) window opens, after the origin.
	Start time.Duration
	// Length is how long each window lasts. Zero or negative means no
	// blackout at all.
	Length time.Duration
	// Every, if positive, repeats the window: one opens at Start, Start +
	// Every, Start + 2·Every and so on. It should exceed Length, or the
	// network never lights again once dark (ParseBlackout insists).
	Every time.Duration
	// Until, if positive, ends the repeats: no window opens at or after
	// Until (one that opened before it still lasts its Length). Zero means
	// they go on for ever.
	Until time.Duration
}

// darkAt reports whether d after the origin falls in a window, and if so
// how long the window has left.
func (b Blackout) darkAt(d time.Duration) (bool, time.Duration) {
	if b.Length <= 0 || d < b.Start {
		return false, 0
	}
	open := b.Start
	if b.Every > 0 {
		k := (d - b.Start) / b.Every
		if b.Until > 0 {
			if b.Until <= b.Start {
				return false, 0
			}
			k = min(k, (b.Until-1-b.Start)/b.Every) // the last window that opens before Until
		}
		open += k * b.Every
	} else if b.Until > 0 && b.Until <= b.Start {
		return false, 0
	}
	if left := open + b.Length - d; left > 0 {
		return true, left
	}
	return false, 0
}

// String gives b in ParseBlackout's syntax ("3s@10s", "2s@5s/5s"), the empty
// string for a blackout that darkens nothing. Until has no syntax of its
// own and is left out.
func (b Blackout) String() string {
	if b.Length <= 0 {
		return ""
	}
	s := b.Length.String() + "@" + b.Start.String()
	if b.Every > 0 {
		s += "/" + b.Every.String()
	}
	return s
}

// Set parses s with ParseBlackout into b, so that a *Blackout is a
// flag.Value.
func (b *Blackout) Set(s string) error {
	v, err := ParseBlackout(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// ParseBlackout parses a blackout as tools take it on their command line:
//
//	LENGTH@START         dark for LENGTH, once, from START on: "3s@10s"
//	LENGTH@START/EVERY   the same window again every EVERY: "2s@5s/5s" is
//	                     dark from 5 s to 7 s, 10 s to 12 s, 15 s to 17 s, …
//
// Each is a duration in time.ParseDuration's syntax, at most 24h; LENGTH
// must be positive and EVERY longer than LENGTH. Spaces around the parts are
// ignored. The empty string is no blackout.
func ParseBlackout(s string) (Blackout, error) {
	fail := func(format string, args ...any) (Blackout, error) {
		return Blackout{}, fmt.Errorf("impair: blackout %q: %s (want LENGTH@START or LENGTH@START/EVERY, such as 3s@10s or 2s@5s/5s)", s, fmt.Sprintf(format, args...))
	}
	if strings.TrimSpace(s) == "" {
		return Blackout{}, nil
	}
	length, rest, ok := strings.Cut(s, "@")
	if !ok {
		return fail("no @ between the length and the start")
	}
	start, every, repeat := strings.Cut(rest, "/")
	var b Blackout
	var err error
	if b.Length, err = parseBlackoutDuration(length); err != nil {
		return fail("length: %v", err)
	}
	if b.Length == 0 {
		return fail("length: must be more than 0")
	}
	if b.Start, err = parseBlackoutDuration(start); err != nil {
		return fail("start: %v", err)
	}
	if repeat {
		if b.Every, err = parseBlackoutDuration(every); err != nil {
			return fail("every: %v", err)
		}
		if b.Every <= b.Length {
			return fail("every (%v) must be longer than the length (%v), or the network never comes back", b.Every, b.Length)
		}
	}
	return b, nil
}

func parseBlackoutDuration(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, errors.New("missing")
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, err
	}
	if d < 0 || d > maxBlackoutDuration {
		return 0, fmt.Errorf("%v not in 0..%v", d, maxBlackoutDuration)
	}
	return d, nil
}

// Network is one host's network: the fate every socket the host opens
// shares, those opened later included, so a client that reconnects on a new
// socket during a blackout finds it just as dark. Give the same Network to
// each Conn (Config.Network), StreamConn and TCPProxy (TCPConfig.Network) of
// the host. Its blackouts count from an origin set by Start; until then it
// is never dark. A nil *Network is never dark. All methods may be called
// concurrently.
type Network struct {
	blackouts []Blackout
	origin    atomic.Int64 // Unix nanoseconds; 0 until Start
}

// NewNetwork returns a network with the given blackouts, not yet started.
func NewNetwork(blackouts ...Blackout) *Network {
	return &Network{blackouts: append([]Blackout(nil), blackouts...)}
}

// Start sets the origin the blackouts count from, such as when the host's
// client connected. Calling it again moves the origin.
func (n *Network) Start(origin time.Time) {
	n.origin.Store(max(origin.UnixNano(), 1))
}

// Dark reports whether the network carries nothing at now.
func (n *Network) Dark(now time.Time) bool {
	return n.darkFor(now) > 0
}

// darkFor is how long from now the network stays dark, at least: zero when
// it is not dark. Windows that overlap or follow at once may extend it, so
// a waiter looks again when it ends.
func (n *Network) darkFor(now time.Time) time.Duration {
	if n == nil {
		return 0
	}
	o := n.origin.Load()
	if o == 0 {
		return 0
	}
	d := time.Duration(now.UnixNano() - o)
	var left time.Duration
	for _, b := range n.blackouts {
		if dark, l := b.darkAt(d); dark {
			left = max(left, l)
		}
	}
	return left
}
