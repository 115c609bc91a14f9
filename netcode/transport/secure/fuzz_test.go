package secure

import (
	"net/netip"
	"testing"
	"time"

	"github.com/roomwire/roomwire/netcode/token"
)

// FuzzOpen feeds arbitrary bytes to a session's packet opener and to a
// server's challenge check: neither may panic, and nothing forged may open.
func FuzzOpen(f *testing.F) {
	k := token.Key{1, 2, 3}
	s := NewSealer(k, pid)
	f.Add(s.Seal(nil, PacketKCP, []byte("segment")))
	f.Add(s.Seal(nil, PacketDisconnect, AppendDisconnect(nil, 1, "bye")))
	f.Add([]byte{byte(PacketResponse), 0, 0})
	f.Add(make([]byte, MaxPacket))
	c := NewChallenger()
	addr := netip.MustParseAddrPort("127.0.0.1:9")
	f.Fuzz(func(t *testing.T, p []byte) {
		o := NewOpener(k, pid)
		t0, payload, err := o.Open(nil, p)
		if err == nil {
			// Only what the sealer made can open; re-sealing must agree.
			if len(payload)+Overhead != len(p) || byte(t0) != p[0] {
				t.Fatalf("opened %d bytes of type %s from %d", len(payload), t0, len(p))
			}
			if t0 == PacketDisconnect {
				_, _, _ = ParseDisconnect(payload)
			}
		}
		if len(p) > 1 {
			if _, err := c.Verify(p[1:], addr, time.Now()); err == nil {
				t.Fatal("a fuzzed challenge verified")
			}
		}
	})
}
