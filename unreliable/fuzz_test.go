package unreliable

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func FuzzParseHeader(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x02, 0x00, 0x07, 0x7f, 0x81})
	f.Add([]byte{0x01, 0x01, 0x02, 0x00, 0x00, 0x00, 0x2a, 0x00, 0x01, 0x00, 0x01})
	f.Add(AppendFragment(nil, 10, 43, bytes.Repeat([]byte{0xa5}, 2000), 1, 2, MaxDatagram))
	f.Add(AppendFragment(nil, 10, 43, bytes.Repeat([]byte{0xa5}, 2000), 0, 2, MaxDatagram)) // 1200 bytes
	f.Add([]byte{0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x40, 0x40})                     // index 64 of 64
	f.Add([]byte{0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00})                     // count 0
	f.Add([]byte{0x01, 0xff, 0xff, 0x00, 0x00, 0x00})                                       // short snapshot body
	f.Add([]byte{0x03, 0x00, 0x00})

	f.Fuzz(func(t *testing.T, d []byte) {
		h, body, err := ParseHeader(d)
		if err != nil {
			require.Nil(t, body)
			switch {
			case errors.Is(err, ErrShort):
				require.Less(t, len(d), HeaderLen)
			case errors.Is(err, ErrTooLarge):
				require.Greater(t, len(d), MaxDatagram)
			case errors.Is(err, ErrUnknownKind):
				require.NotContains(t, []Kind{KindSnapshot, KindInput, KindAck, KindEvent, KindReliable}, Kind(d[0]))
			default:
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		require.GreaterOrEqual(t, len(d), HeaderLen)
		require.LessOrEqual(t, len(d), MaxDatagram)
		require.Contains(t, []Kind{KindSnapshot, KindInput, KindAck, KindEvent, KindReliable}, h.Kind)
		require.Equal(t, d[:HeaderLen], AppendHeader(nil, h), "the header re-encodes to its bytes")
		require.Len(t, body, len(d)-HeaderLen)
		if len(body) > 0 {
			require.Same(t, &d[HeaderLen], &body[0])
		}
		if h.Kind != KindSnapshot {
			return
		}

		sh, frag, err := ParseSnapshotHeader(body)
		if err != nil {
			require.Nil(t, frag)
			if len(body) < SnapshotHeaderLen {
				require.ErrorIs(t, err, ErrShort)
			} else {
				require.ErrorIs(t, err, ErrBadFragment)
				require.True(t, sh.Count == 0 || sh.Count > MaxFragments || sh.Index >= sh.Count)
			}
			return
		}
		require.GreaterOrEqual(t, sh.Count, uint8(1))
		require.LessOrEqual(t, sh.Count, uint8(MaxFragments))
		require.Less(t, sh.Index, sh.Count)
		require.Equal(t, body[:SnapshotHeaderLen], AppendSnapshotHeader(nil, sh))
		require.LessOrEqual(t, len(frag), FragmentPayload(MaxDatagram))
		require.Equal(t, len(body)-SnapshotHeaderLen, len(frag))

		// What parses must survive the reassembler.
		var r Reassembler
		tick, snap, ok := r.Add(sh, frag, t0)
		require.Equal(t, sh.Count == 1, ok)
		if ok {
			require.Equal(t, sh.Tick, tick)
			require.True(t, bytes.Equal(frag, snap))
		}
	})
}

// fuzzPattern is the source of fragment data in FuzzReassembler.
var fuzzPattern = func() []byte {
	b := make([]byte, 256+FragmentPayload(MaxDatagram))
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}()

// fuzzFragment is the deterministic data of fragment index of a
// count-fragment snapshot of tick, so that a reassembled snapshot can be
// checked whatever order and duplicates the fuzzer sends. Even ticks have
// full fragments.
func fuzzFragment(tick uint32, index, count uint8) []byte {
	p := FragmentPayload(MaxDatagram)
	n := p
	if tick%2 == 1 {
		n = int(tick*131+uint32(index)*17+uint32(count)) % (p + 1)
	}
	k := int(byte(tick) ^ index<<2 ^ count)
	return fuzzPattern[k : k+n]
}

// isFuzzSnapshot reports whether snap is the concatenation of the count
// fragments of tick.
func isFuzzSnapshot(tick uint32, count uint8, snap []byte) bool {
	for i := range count {
		frag := fuzzFragment(tick, i, count)
		if !bytes.HasPrefix(snap, frag) {
			return false
		}
		snap = snap[len(frag):]
	}
	return len(snap) == 0
}

// Each operation of FuzzReassembler is 4 bytes:
//
//	op:    high nibble advances the clock by that many 100 ms; low nibble 0xf
//	       resets the reassembler, 0xe jumps the tick base by a<<24|b<<16,
//	       anything else sends a fragment
//	a:     tick = base + a&0x1f
//	b:     count = b % 66 (0 and 65 are invalid and must be refused)
//	c:     index = c % (count+1) (index == count is invalid)
//
// The first two bytes set Timeout (x 10 ms) and Restart (0..127 ticks).
func fuzzOps(ops ...[4]byte) []byte {
	b := []byte{0, 0}
	for _, op := range ops {
		b = append(b, op[:]...)
	}
	return b
}

func FuzzReassembler(f *testing.F) {
	f.Add(fuzzOps([4]byte{0, 1, 3, 0}, [4]byte{0, 1, 3, 1}, [4]byte{0, 1, 3, 2}))                      // in order
	f.Add(fuzzOps([4]byte{0, 2, 3, 2}, [4]byte{0, 2, 3, 0}, [4]byte{0, 2, 3, 2}, [4]byte{0, 2, 3, 1})) // reordered, duplicate
	f.Add(fuzzOps([4]byte{0, 1, 2, 0}, [4]byte{0, 2, 2, 0}, [4]byte{0, 3, 2, 0}, [4]byte{0, 4, 2, 0},
		[4]byte{0, 5, 2, 0}, [4]byte{0, 1, 2, 1}, [4]byte{0, 5, 2, 1})) // eviction
	f.Add(fuzzOps([4]byte{0, 4, 2, 0}, [4]byte{0xb0, 4, 2, 1}, [4]byte{0, 9, 1, 0}))                       // timeout
	f.Add(fuzzOps([4]byte{0, 30, 1, 0}, [4]byte{0, 3, 1, 0}, [4]byte{0x0f, 0, 0, 0}, [4]byte{0, 3, 1, 0})) // stale, reset
	f.Add(fuzzOps([4]byte{0, 31, 1, 0}, [4]byte{0x0e, 0x80, 0, 0}, [4]byte{0, 0, 1, 0}, [4]byte{0x0e, 0x7f, 0xff, 0}))
	f.Add(append([]byte{10, 16}, []byte{0, 1, 2, 0, 0, 25, 2, 0, 0, 1, 2, 1, 0, 25, 2, 1}...))
	full := []byte{0, 0}
	for i := range byte(64) {
		full = append(full, 0, 2, 64, 63-i) // 64 full fragments, reversed: the largest snapshot
	}
	f.Add(full)

	const (
		maxSnapshot = MaxFragments * (MaxDatagram - HeaderLen - SnapshotHeaderLen)
		maxOps      = 160 // room for the largest snapshot and more; keeps runs and minimization short
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 2 {
			return
		}
		r := Reassembler{
			Timeout: time.Duration(data[0]) * 10 * time.Millisecond,
			Restart: uint32(data[1] & 0x7f),
		}
		data = data[2:min(len(data), 2+4*maxOps)]
		now := t0
		base := uint32(0xfffffff0) // close to wraparound
		var last uint32
		var haveLast bool
		var seq uint16
		var dgram []byte
		// The checks below avoid testify: this loop runs millions of times.
		for ; len(data) >= 4; data = data[4:] {
			op, a, b, c := data[0], data[1], data[2], data[3]
			now = now.Add(time.Duration(op>>4) * 100 * time.Millisecond)
			switch op & 0x0f {
			case 0x0f:
				r.Reset()
				haveLast = false
				continue
			case 0x0e:
				base += uint32(a)<<24 | uint32(b)<<16
				continue
			}
			tick := base + uint32(a&0x1f)
			count := b % (MaxFragments + 2)
			index := c % (count + 1)

			// Through the wire format, as a receiver sees it.
			dgram = AppendHeader(dgram[:0], Header{Kind: KindSnapshot, Seq: seq})
			seq++
			dgram = AppendSnapshotHeader(dgram, SnapshotHeader{Tick: tick, Index: index, Count: count})
			dgram = append(dgram, fuzzFragment(tick, index, count)...)
			h, body, err := ParseHeader(dgram)
			if err != nil || h.Kind != KindSnapshot {
				t.Fatalf("ParseHeader of a %d-byte fragment: %v, %v", len(dgram), h, err)
			}
			sh, frag, err := ParseSnapshotHeader(body)
			valid := count >= 1 && count <= MaxFragments && index < count
			if valid != (err == nil) {
				t.Fatalf("fragment %d of %d: err %v", index, count, err)
			}
			if err != nil {
				continue
			}

			if !r.haveAny {
				// Reset, or a fragment more than Restart ticks behind
				// started a new tick sequence: any tick is accepted
				// again (PROTOCOL.md 5.5).
				haveLast = false
			}
			stale, dropped := r.Stale, r.Dropped
			got, snap, ok := r.Add(sh, frag, now)
			if r.Stale < stale || r.Stale > stale+1 || r.Dropped < dropped {
				t.Fatalf("counters went from stale %d dropped %d to %d, %d", stale, dropped, r.Stale, r.Dropped)
			}
			if !ok {
				if snap != nil {
					t.Fatalf("snapshot bytes without a snapshot")
				}
				continue
			}
			if r.Stale != stale {
				t.Fatalf("tick %d delivered and counted stale", tick)
			}
			if got != tick {
				t.Fatalf("delivered tick %d on a fragment of tick %d", got, tick)
			}
			if len(snap) > maxSnapshot {
				t.Fatalf("snapshot of %d bytes > %d", len(snap), maxSnapshot)
			}
			if !isFuzzSnapshot(tick, count, snap) {
				t.Fatalf("tick %d: wrong snapshot bytes (%d bytes)", tick, len(snap))
			}
			if haveLast {
				// Never an older snapshot than one already delivered,
				// except as the start of a new tick sequence.
				restart := r.Restart != 0 && last-got > r.Restart
				if !TickNewer(got, last) && !restart {
					t.Fatalf("tick %d delivered after %d", got, last)
				}
			}
			last, haveLast = got, true
		}
	})
}
