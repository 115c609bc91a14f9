package unreliable

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// P is the fragment payload at the default datagram limit.
const P = MaxDatagram - HeaderLen - SnapshotHeaderLen

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// snapshotData is n deterministic bytes that differ per tick, so that a
// snapshot reassembled from the wrong pieces shows.
func snapshotData(tick uint32, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251 + int(tick)*13)
	}
	return b
}

type fragment struct {
	h    SnapshotHeader
	data []byte
}

// fragments splits data the way a sender does and parses each datagram back
// the way a receiver does.
func fragments(t testing.TB, tick uint32, data []byte, maxDatagram int) []fragment {
	t.Helper()
	count, err := FragmentCount(len(data), maxDatagram)
	require.NoError(t, err)
	out := make([]fragment, count)
	for i := range count {
		d := AppendFragment(nil, uint16(i), tick, data, i, count, maxDatagram)
		require.LessOrEqual(t, len(d), maxDatagram)
		h, body, err := ParseHeader(d)
		require.NoError(t, err)
		require.Equal(t, Header{Kind: KindSnapshot, Seq: uint16(i)}, h)
		sh, frag, err := ParseSnapshotHeader(body)
		require.NoError(t, err)
		require.Equal(t, SnapshotHeader{Tick: tick, Index: uint8(i), Count: uint8(count)}, sh)
		out[i] = fragment{sh, frag}
	}
	return out
}

func TestSnapshotHeaderRoundTrip(t *testing.T) {
	cases := []SnapshotHeader{
		{Tick: 0, Index: 0, Count: 1},
		{Tick: 42, Index: 1, Count: 2},
		{Tick: 0xffffffff, Index: MaxFragments - 1, Count: MaxFragments},
		{Tick: 0x01020304, Index: 0, Count: MaxFragments},
		{Tick: 7, Epoch: 255, Index: 2, Count: 3},
	}
	for _, h := range cases {
		b := AppendSnapshotHeader([]byte{0xee}, h)
		require.Len(t, b, 1+SnapshotHeaderLen)
		require.Equal(t, byte(0xee), b[0])
		got, frag, err := ParseSnapshotHeader(append(b[1:], 'x', 'y'))
		require.NoError(t, err)
		require.Equal(t, h, got)
		require.Equal(t, "xy", string(frag))
	}
	b := AppendSnapshotHeader(nil, SnapshotHeader{Tick: 0x01020304, Epoch: 9, Index: 5, Count: 6})
	require.Equal(t, "01020304"+"09"+"05"+"06", hex.EncodeToString(b))
}

func TestParseSnapshotHeaderErrors(t *testing.T) {
	cases := []struct {
		name string
		body []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"6 bytes", []byte{0, 0, 0, 1, 0, 0}, ErrShort},
		{"count 0", []byte{0, 0, 0, 1, 1, 0, 0}, ErrBadFragment},
		{"count 65", []byte{0, 0, 0, 1, 1, 0, 65}, ErrBadFragment},
		{"count 255", []byte{0, 0, 0, 1, 1, 0, 255}, ErrBadFragment},
		{"index == count", []byte{0, 0, 0, 1, 1, 3, 3}, ErrBadFragment},
		{"index > count", []byte{0, 0, 0, 1, 1, 200, 3}, ErrBadFragment},
		{"index 64 of 64", []byte{0, 0, 0, 1, 1, 64, 64}, ErrBadFragment},
		{"index 1 of 1", []byte{0, 0, 0, 1, 1, 1, 1}, ErrBadFragment},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, frag, err := ParseSnapshotHeader(tc.body)
			require.ErrorIs(t, err, tc.want)
			require.Nil(t, frag)
			other := ErrShort
			if tc.want == ErrShort {
				other = ErrBadFragment
			}
			require.NotErrorIs(t, err, other)
		})
	}
	for _, body := range [][]byte{{0, 0, 0, 1, 1, 0, 1}, {0, 0, 0, 1, 1, 63, 64}, {0, 0, 0, 1, 1, 0, 64}} {
		_, frag, err := ParseSnapshotHeader(body)
		require.NoError(t, err)
		require.Empty(t, frag)
	}
}

func TestFragmentCount(t *testing.T) {
	const p256 = MinDatagram - HeaderLen - SnapshotHeaderLen
	require.Equal(t, 1184, FragmentPayload(MaxDatagram)) // PROTOCOL.md 5.4
	require.Equal(t, 240, FragmentPayload(MinDatagram))
	cases := []struct {
		n, max, want int
		err          bool
	}{
		{0, MaxDatagram, 1, false},
		{1, MaxDatagram, 1, false},
		{P - 1, MaxDatagram, 1, false},
		{P, MaxDatagram, 1, false},
		{P + 1, MaxDatagram, 2, false},
		{2000, MaxDatagram, 2, false},
		{2 * P, MaxDatagram, 2, false},
		{2*P + 1, MaxDatagram, 3, false},
		{63*P + 1, MaxDatagram, 64, false},
		{64 * P, MaxDatagram, 64, false}, // 76 224 bytes: the largest snapshot
		{64*P + 1, MaxDatagram, 0, true},
		{1 << 20, MaxDatagram, 0, true},
		{0, MinDatagram, 1, false},
		{p256, MinDatagram, 1, false},
		{p256 + 1, MinDatagram, 2, false},
		{64 * p256, MinDatagram, 64, false},
		{64*p256 + 1, MinDatagram, 0, true},
	}
	for _, tc := range cases {
		c, err := FragmentCount(tc.n, tc.max)
		if tc.err {
			require.ErrorIs(t, err, ErrSnapshotBig, "n=%d max=%d", tc.n, tc.max)
			require.Zero(t, c)
			continue
		}
		require.NoError(t, err, "n=%d max=%d", tc.n, tc.max)
		require.Equal(t, tc.want, c, "n=%d max=%d", tc.n, tc.max)
	}
}

func TestAppendFragment(t *testing.T) {
	for _, maxD := range []int{MinDatagram, 500, MaxDatagram} {
		p := FragmentPayload(maxD)
		for _, n := range []int{0, 1, p - 1, p, p + 1, 2 * p, 3*p - 1, 64 * p} {
			data := snapshotData(uint32(n), n)
			count, err := FragmentCount(n, maxD)
			require.NoError(t, err)
			var joined []byte
			for i := range count {
				prefix := []byte{0xab, 0xcd}
				d := AppendFragment(append([]byte(nil), prefix...), uint16(1000+i), 77, data, i, count, maxD)
				require.Equal(t, prefix, d[:2])
				d = d[2:]
				require.LessOrEqual(t, len(d), maxD)
				if i < count-1 {
					require.Len(t, d, maxD, "every fragment but the last is full")
				}
				h, body, err := ParseHeader(d)
				require.NoError(t, err)
				require.Equal(t, Header{Kind: KindSnapshot, Seq: uint16(1000 + i)}, h)
				sh, frag, err := ParseSnapshotHeader(body)
				require.NoError(t, err)
				require.Equal(t, SnapshotHeader{Tick: 77, Index: uint8(i), Count: uint8(count)}, sh)
				joined = append(joined, frag...)
			}
			require.Equal(t, len(data), len(joined), "maxDatagram %d, n %d", maxD, n)
			require.True(t, bytes.Equal(data, joined), "maxDatagram %d, n %d: fragments do not join to the snapshot", maxD, n)
		}
	}
}

// PROTOCOL.md 5.4: a 2000-byte snapshot for tick 43 from seq 10.
func TestAppendFragmentProtocolExample(t *testing.T) {
	data := snapshotData(43, 2000)
	count, err := FragmentCount(len(data), MaxDatagram)
	require.NoError(t, err)
	require.Equal(t, 2, count)
	d0 := AppendFragment(nil, 10, 43, data, 0, count, MaxDatagram)
	d1 := AppendFragment(nil, 11, 43, data, 1, count, MaxDatagram)
	require.Equal(t, "01000a000000000000"+"0000002b"+"00"+"0002", hex.EncodeToString(d0[:16]))
	require.Equal(t, "01000b000000000000"+"0000002b"+"00"+"0102", hex.EncodeToString(d1[:16]))
	require.Len(t, d0, 1200)
	require.Len(t, d1, 832)
	require.Equal(t, data[:1184], d0[16:])
	require.Equal(t, data[1184:], d1[16:])
}

func TestFragmentAllocs(t *testing.T) {
	data := snapshotData(1, 3000)
	buf := make([]byte, 0, MaxDatagram)
	allocs := testing.AllocsPerRun(1000, func() {
		for i := range 3 {
			buf = AppendFragment(buf[:0], uint16(i), 1, data, i, 3, MaxDatagram)
		}
	})
	require.Zero(t, allocs)
	require.Len(t, buf, HeaderLen+SnapshotHeaderLen+3000-2*P)
}

func deliver(t testing.TB, r *Reassembler, frags []fragment, now time.Time) (uint32, []byte, int) {
	t.Helper()
	var tick uint32
	var snap []byte
	done := 0
	for _, f := range frags {
		if tk, s, ok := r.Add(f.h, f.data, now); ok {
			done++
			tick, snap = tk, append([]byte(nil), s...)
		}
	}
	return tick, snap, done
}

func TestReassembleInOrder(t *testing.T) {
	for _, n := range []int{P + 1, 2000, 3 * P, 10*P + 17, 64 * P} {
		var r Reassembler
		data := snapshotData(5, n)
		frags := fragments(t, 5, data, MaxDatagram)
		for i, f := range frags {
			tick, snap, ok := r.Add(f.h, f.data, t0)
			if i < len(frags)-1 {
				require.False(t, ok, "snapshot of %d bytes delivered after %d of %d fragments", n, i+1, len(frags))
				require.Nil(t, snap)
				continue
			}
			require.True(t, ok)
			require.Equal(t, uint32(5), tick)
			require.Equal(t, data, snap)
		}
		require.Zero(t, r.Dropped)
		require.Zero(t, r.Stale)
	}
}

func TestReassembleOutOfOrder(t *testing.T) {
	data := snapshotData(9, 3*P)
	frags := fragments(t, 9, data, MaxDatagram)
	perms := [][]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}}
	for _, perm := range perms {
		var r Reassembler
		var order []fragment
		for _, i := range perm {
			order = append(order, frags[i])
		}
		tick, snap, done := deliver(t, &r, order, t0)
		require.Equal(t, 1, done, "order %v", perm)
		require.Equal(t, uint32(9), tick)
		require.Equal(t, data, snap, "order %v", perm)
	}

	rng := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		n := P + 1 + rng.IntN(63*P)
		tick := rng.Uint32()
		data := snapshotData(tick, n)
		frags := fragments(t, tick, data, MaxDatagram)
		rng.Shuffle(len(frags), func(i, j int) { frags[i], frags[j] = frags[j], frags[i] })
		var r Reassembler
		got, snap, done := deliver(t, &r, frags, t0)
		require.Equal(t, 1, done)
		require.Equal(t, tick, got)
		require.Equal(t, data, snap)
	}
}

func TestReassembleDuplicates(t *testing.T) {
	data := snapshotData(3, 3*P-5)
	frags := fragments(t, 3, data, MaxDatagram)
	var r Reassembler
	seq := []fragment{frags[0], frags[0], frags[1], frags[0], frags[1]}
	_, _, done := deliver(t, &r, seq, t0)
	require.Zero(t, done, "duplicates must not count toward completion")

	tick, snap, ok := r.Add(frags[2].h, frags[2].data, t0)
	require.True(t, ok)
	require.Equal(t, uint32(3), tick)
	require.Equal(t, data, snap)

	// A duplicate after delivery is stale, not a second delivery.
	for _, f := range frags {
		_, _, ok := r.Add(f.h, f.data, t0)
		require.False(t, ok)
	}
	require.Equal(t, uint64(3), r.Stale)
	require.Zero(t, r.Dropped)
}

// A duplicate carrying different bytes does not replace the first copy.
func TestReassembleDuplicateKeepsFirst(t *testing.T) {
	data := snapshotData(3, 2*P)
	frags := fragments(t, 3, data, MaxDatagram)
	var r Reassembler
	_, _, ok := r.Add(frags[0].h, frags[0].data, t0)
	require.False(t, ok)
	_, _, ok = r.Add(frags[0].h, make([]byte, P), t0)
	require.False(t, ok)
	_, snap, ok := r.Add(frags[1].h, frags[1].data, t0)
	require.True(t, ok)
	require.Equal(t, data, snap)
}

// Fragment bytes are copied: the caller may reuse its receive buffer.
func TestReassembleCopiesFragments(t *testing.T) {
	data := snapshotData(4, 2*P)
	frags := fragments(t, 4, data, MaxDatagram)
	var r Reassembler
	buf := append([]byte(nil), frags[0].data...)
	_, _, ok := r.Add(frags[0].h, buf, t0)
	require.False(t, ok)
	clear(buf)
	_, snap, ok := r.Add(frags[1].h, frags[1].data, t0)
	require.True(t, ok)
	require.Equal(t, data, snap)
}

func TestReassembleMissingFragment(t *testing.T) {
	data := snapshotData(20, 3*P)
	frags := fragments(t, 20, data, MaxDatagram)
	r := Reassembler{Timeout: 100 * time.Millisecond}

	// Fragments 0 and 2, repeated, over time: never a snapshot.
	for i := range 10 {
		now := t0.Add(time.Duration(i) * 10 * time.Millisecond)
		for _, f := range []fragment{frags[0], frags[2]} {
			_, snap, ok := r.Add(f.h, f.data, now)
			require.False(t, ok)
			require.Nil(t, snap)
		}
	}
	require.Zero(t, r.Dropped)

	// Exactly at the deadline the slot is kept...
	other := fragments(t, 21, snapshotData(21, 2*P), MaxDatagram)
	_, _, ok := r.Add(other[0].h, other[0].data, t0.Add(100*time.Millisecond))
	require.False(t, ok)
	require.Zero(t, r.Dropped)
	require.True(t, r.inProgress(20))

	// ...and just after, dropped, counted once.
	_, _, ok = r.Add(other[0].h, other[0].data, t0.Add(100*time.Millisecond+1))
	require.False(t, ok)
	require.Equal(t, uint64(1), r.Dropped)
	require.False(t, r.inProgress(20))
	require.True(t, r.inProgress(21), "the newer slot started at t0+100ms is still young")

	// The missing fragment arriving late starts over: the earlier pieces are
	// gone, so it still does not yield the snapshot.
	_, snap, ok := r.Add(frags[1].h, frags[1].data, t0.Add(250*time.Millisecond))
	require.False(t, ok)
	require.Nil(t, snap)
	require.Equal(t, uint64(2), r.Dropped, "tick 21, started at t0+100ms, timed out too")
	require.Zero(t, r.Stale)
}

func TestReassembleDefaultTimeout(t *testing.T) {
	frags := fragments(t, 1, snapshotData(1, 2*P), MaxDatagram)
	next := fragments(t, 2, snapshotData(2, 2*P), MaxDatagram)
	for _, tc := range []struct {
		timeout time.Duration
		after   time.Duration
		dropped bool
	}{
		{0, time.Second, false},
		{0, time.Second + 1, true},
		{-5 * time.Second, time.Second, false},
		{-5 * time.Second, time.Second + 1, true},
		{3 * time.Second, 2 * time.Second, false},
		{3 * time.Second, 3*time.Second + 1, true},
	} {
		r := Reassembler{Timeout: tc.timeout}
		_, _, ok := r.Add(frags[0].h, frags[0].data, t0)
		require.False(t, ok)
		_, _, ok = r.Add(next[0].h, next[0].data, t0.Add(tc.after))
		require.False(t, ok)
		require.Equal(t, tc.dropped, r.Dropped == 1, "timeout %v, after %v", tc.timeout, tc.after)
		require.Equal(t, !tc.dropped, r.inProgress(1))
	}
}

func TestReassembleStale(t *testing.T) {
	var r Reassembler
	_, _, done := deliver(t, &r, fragments(t, 100, snapshotData(100, 2*P), MaxDatagram), t0)
	require.Equal(t, 1, done)

	stale := []struct {
		tick uint32
		n    int
	}{
		{100, 2 * P}, // equal, multi-fragment
		{100, 10},    // equal, single fragment
		{99, 2 * P},  // older
		{99, 1},
		{1, 3 * P},
		{100 + 1<<31, 5}, // exactly half the space away: not newer
	}
	var want uint64
	for _, s := range stale {
		for _, f := range fragments(t, s.tick, snapshotData(s.tick, s.n), MaxDatagram) {
			_, snap, ok := r.Add(f.h, f.data, t0)
			require.False(t, ok, "tick %d", s.tick)
			require.Nil(t, snap)
			want++
			require.Equal(t, want, r.Stale)
		}
	}
	require.Zero(t, r.Dropped)
	for i := range r.slots {
		require.False(t, r.slots[i].used, "a stale fragment must not take a slot")
	}

	// Newer still works.
	tick, _, done := deliver(t, &r, fragments(t, 101, snapshotData(101, 2*P), MaxDatagram), t0)
	require.Equal(t, 1, done)
	require.Equal(t, uint32(101), tick)
}

func TestReassembleStaleAcrossWraparound(t *testing.T) {
	var r Reassembler
	ticks := []uint32{0xfffffffe, 0xffffffff, 0, 1}
	for _, tick := range ticks {
		data := snapshotData(tick, 2*P)
		got, snap, done := deliver(t, &r, fragments(t, tick, data, MaxDatagram), t0)
		require.Equal(t, 1, done, "tick %d", tick)
		require.Equal(t, tick, got)
		require.Equal(t, data, snap)
	}
	for _, tick := range ticks {
		_, _, done := deliver(t, &r, fragments(t, tick, snapshotData(tick, 5), MaxDatagram), t0)
		require.Zero(t, done, "tick %d after 1", tick)
	}
	require.Equal(t, uint64(len(ticks)), r.Stale)
}

func TestReassembleEvictsOldest(t *testing.T) {
	var r Reassembler
	snaps := map[uint32][]fragment{}
	for tick := uint32(1); tick <= 6; tick++ {
		snaps[tick] = fragments(t, tick, snapshotData(tick, 2*P), MaxDatagram)
	}
	// Four incomplete snapshots fill the slots.
	for tick := uint32(1); tick <= 4; tick++ {
		_, _, ok := r.Add(snaps[tick][0].h, snaps[tick][0].data, t0)
		require.False(t, ok)
	}
	require.Zero(t, r.Dropped)

	// A fifth, newer one evicts the oldest, tick 1.
	_, _, ok := r.Add(snaps[5][0].h, snaps[5][0].data, t0)
	require.False(t, ok)
	require.Equal(t, uint64(1), r.Dropped)
	require.False(t, r.inProgress(1))
	for tick := uint32(2); tick <= 5; tick++ {
		require.True(t, r.inProgress(tick), "tick %d", tick)
	}

	// Tick 1's last fragment finds no slot (older than all in progress, none
	// free): dropped as stale, and it never yields a snapshot.
	_, _, ok = r.Add(snaps[1][1].h, snaps[1][1].data, t0)
	require.False(t, ok)
	require.Equal(t, uint64(1), r.Stale)
	require.Equal(t, uint64(1), r.Dropped)

	// Completing tick 4 delivers it and drops 2 and 3, which can no longer
	// be delivered; 5 stays.
	tick, snap, ok := r.Add(snaps[4][1].h, snaps[4][1].data, t0)
	require.True(t, ok)
	require.Equal(t, uint32(4), tick)
	require.Equal(t, snapshotData(4, 2*P), snap)
	require.Equal(t, uint64(3), r.Dropped)
	require.True(t, r.inProgress(5))
	require.False(t, r.inProgress(2))
	require.False(t, r.inProgress(3))

	tick, snap, ok = r.Add(snaps[5][1].h, snaps[5][1].data, t0)
	require.True(t, ok)
	require.Equal(t, uint32(5), tick)
	require.Equal(t, snapshotData(5, 2*P), snap)
}

func TestReassembleEvictionOrder(t *testing.T) {
	t.Run("ticks arriving newest first", func(t *testing.T) {
		var r Reassembler
		for _, tick := range []uint32{5, 4, 3, 2} {
			f := fragments(t, tick, snapshotData(tick, 2*P), MaxDatagram)[0]
			_, _, ok := r.Add(f.h, f.data, t0)
			require.False(t, ok)
		}
		// Tick 1 is older than everything in progress: it is the one dropped.
		f := fragments(t, 1, snapshotData(1, 2*P), MaxDatagram)[0]
		_, _, ok := r.Add(f.h, f.data, t0)
		require.False(t, ok)
		require.Equal(t, uint64(1), r.Stale)
		require.Zero(t, r.Dropped)
		// Tick 6 evicts tick 2, the oldest, though it came last.
		f = fragments(t, 6, snapshotData(6, 2*P), MaxDatagram)[0]
		_, _, ok = r.Add(f.h, f.data, t0)
		require.False(t, ok)
		require.Equal(t, uint64(1), r.Dropped)
		require.False(t, r.inProgress(2))
		for _, tick := range []uint32{3, 4, 5, 6} {
			require.True(t, r.inProgress(tick))
		}
	})
	t.Run("across wraparound", func(t *testing.T) {
		var r Reassembler
		for _, tick := range []uint32{0, 1, 0xfffffffe, 0xffffffff} {
			f := fragments(t, tick, snapshotData(tick, 2*P), MaxDatagram)[0]
			_, _, ok := r.Add(f.h, f.data, t0)
			require.False(t, ok)
		}
		f := fragments(t, 2, snapshotData(2, 2*P), MaxDatagram)[0]
		_, _, ok := r.Add(f.h, f.data, t0)
		require.False(t, ok)
		require.Equal(t, uint64(1), r.Dropped)
		require.False(t, r.inProgress(0xfffffffe), "0xfffffffe precedes 0 in serial arithmetic")
		for _, tick := range []uint32{0xffffffff, 0, 1, 2} {
			require.True(t, r.inProgress(tick), "tick %d", tick)
		}
	})
}

func TestReassembleSingleFragment(t *testing.T) {
	var r Reassembler
	data := snapshotData(8, 100)
	frags := fragments(t, 8, data, MaxDatagram)
	require.Len(t, frags, 1)
	tick, snap, ok := r.Add(frags[0].h, frags[0].data, t0)
	require.True(t, ok)
	require.Equal(t, uint32(8), tick)
	require.Equal(t, data, snap)
	require.Same(t, &frags[0].data[0], &snap[0], "a single fragment is returned in place")

	// Empty snapshot: one fragment with no data.
	empty := fragments(t, 9, nil, MaxDatagram)
	tick, snap, ok = r.Add(empty[0].h, empty[0].data, t0)
	require.True(t, ok)
	require.Equal(t, uint32(9), tick)
	require.Empty(t, snap)

	// A full-size single fragment.
	full := fragments(t, 10, snapshotData(10, P), MaxDatagram)
	require.Len(t, full, 1)
	_, snap, ok = r.Add(full[0].h, full[0].data, t0)
	require.True(t, ok)
	require.Len(t, snap, P)

	// A single-fragment snapshot drops older ones in progress.
	multi := fragments(t, 11, snapshotData(11, 2*P), MaxDatagram)
	_, _, ok = r.Add(multi[0].h, multi[0].data, t0)
	require.False(t, ok)
	_, _, ok = r.Add(SnapshotHeader{Tick: 12, Index: 0, Count: 1}, []byte("x"), t0)
	require.True(t, ok)
	require.Equal(t, uint64(1), r.Dropped)
	_, _, ok = r.Add(multi[1].h, multi[1].data, t0)
	require.False(t, ok)
	require.Equal(t, uint64(1), r.Stale)

	require.Zero(t, testing.AllocsPerRun(100, func() {
		tick += 101
		_, _, ok = r.Add(SnapshotHeader{Tick: tick, Count: 1}, data, t0)
	}))
	require.True(t, ok)
}

func TestReassembleCountMismatch(t *testing.T) {
	var r Reassembler
	data := snapshotData(30, 3*P)
	frags := fragments(t, 30, data, MaxDatagram)
	_, _, ok := r.Add(frags[0].h, frags[0].data, t0)
	require.False(t, ok)
	// Same tick, other count: ignored, neither stale nor a completion.
	for _, h := range []SnapshotHeader{{Tick: 30, Index: 1, Count: 2}, {Tick: 30, Index: 3, Count: 4}} {
		_, _, ok = r.Add(h, make([]byte, 10), t0)
		require.False(t, ok)
	}
	require.Zero(t, r.Stale)
	require.Zero(t, r.Dropped)
	_, snap, done := deliver(t, &r, frags[1:], t0)
	require.Equal(t, 1, done)
	require.Equal(t, data, snap)
}

func TestReassembleNewerDropsOlder(t *testing.T) {
	var r Reassembler
	a := fragments(t, 10, snapshotData(10, 2*P), MaxDatagram)
	b := fragments(t, 11, snapshotData(11, 2*P), MaxDatagram)
	c := fragments(t, 12, snapshotData(12, 2*P), MaxDatagram)
	_, _, ok := r.Add(a[0].h, a[0].data, t0)
	require.False(t, ok)
	_, _, ok = r.Add(c[0].h, c[0].data, t0)
	require.False(t, ok)
	_, _, done := deliver(t, &r, b, t0)
	require.Equal(t, 1, done)
	require.Equal(t, uint64(1), r.Dropped, "tick 10 can never be delivered after 11")
	require.True(t, r.inProgress(12))
	_, _, ok = r.Add(a[1].h, a[1].data, t0)
	require.False(t, ok)
	require.Equal(t, uint64(1), r.Stale)
	tick, _, ok := r.Add(c[1].h, c[1].data, t0)
	require.True(t, ok)
	require.Equal(t, uint32(12), tick)
}

func TestReassembleRestart(t *testing.T) {
	r := Reassembler{Restart: 64}
	_, _, done := deliver(t, &r, fragments(t, 1000, snapshotData(1000, 5), MaxDatagram), t0)
	require.Equal(t, 1, done)
	// A snapshot in progress that the restart forgets.
	inflight := fragments(t, 1001, snapshotData(1001, 2*P), MaxDatagram)
	_, _, ok := r.Add(inflight[0].h, inflight[0].data, t0)
	require.False(t, ok)

	// 64 behind: stale.
	_, _, done = deliver(t, &r, fragments(t, 1000-64, snapshotData(936, 5), MaxDatagram), t0)
	require.Zero(t, done)
	require.Equal(t, uint64(1), r.Stale)

	// 65 behind: a new tick sequence.
	data := snapshotData(935, 2*P)
	tick, snap, done := deliver(t, &r, fragments(t, 935, data, MaxDatagram), t0)
	require.Equal(t, 1, done)
	require.Equal(t, uint32(935), tick)
	require.Equal(t, data, snap)
	require.False(t, r.inProgress(1001), "a restart forgets snapshots in progress")

	// The new sequence is now the reference: 936 is newer, 934 stale.
	_, _, done = deliver(t, &r, fragments(t, 936, snapshotData(936, 5), MaxDatagram), t0)
	require.Equal(t, 1, done)
	_, _, done = deliver(t, &r, fragments(t, 934, snapshotData(934, 5), MaxDatagram), t0)
	require.Zero(t, done)
	require.Equal(t, uint64(2), r.Stale)

	// Restart across wraparound: newest 10, tick 0xfffffff0 is 26 behind.
	r = Reassembler{Restart: 20}
	_, _, done = deliver(t, &r, fragments(t, 10, nil, MaxDatagram), t0)
	require.Equal(t, 1, done)
	_, _, done = deliver(t, &r, fragments(t, 0xfffffff0, nil, MaxDatagram), t0)
	require.Equal(t, 1, done)
	_, _, done = deliver(t, &r, fragments(t, 0xfffffff0-20, nil, MaxDatagram), t0)
	require.Zero(t, done)

	// Restart zero: never.
	r = Reassembler{}
	_, _, done = deliver(t, &r, fragments(t, 1<<30, nil, MaxDatagram), t0)
	require.Equal(t, 1, done)
	_, _, done = deliver(t, &r, fragments(t, 1, nil, MaxDatagram), t0)
	require.Zero(t, done)
	require.Equal(t, uint64(1), r.Stale)
}

func TestReassembleReset(t *testing.T) {
	var r Reassembler
	_, _, done := deliver(t, &r, fragments(t, 500, snapshotData(500, 2*P), MaxDatagram), t0)
	require.Equal(t, 1, done)
	pending := fragments(t, 501, snapshotData(501, 2*P), MaxDatagram)
	_, _, ok := r.Add(pending[0].h, pending[0].data, t0)
	require.False(t, ok)

	r.Reset()
	require.False(t, r.inProgress(501))
	// Any tick is accepted again, even an older one.
	data := snapshotData(3, 2*P)
	tick, snap, done := deliver(t, &r, fragments(t, 3, data, MaxDatagram), t0)
	require.Equal(t, 1, done)
	require.Equal(t, uint32(3), tick)
	require.Equal(t, data, snap)
	// 501's second fragment alone does not complete it.
	_, _, ok = r.Add(pending[1].h, pending[1].data, t0)
	require.False(t, ok)
	require.Zero(t, r.Stale)
}

// Interleaved snapshots, as a lossy, reordering path delivers them.
func TestReassembleInterleaved(t *testing.T) {
	var r Reassembler
	a := fragments(t, 40, snapshotData(40, 3*P), MaxDatagram)
	b := fragments(t, 41, snapshotData(41, 2*P-1), MaxDatagram)
	require.Len(t, a, 3)
	require.Len(t, b, 2)
	seq := []fragment{a[0], b[1], a[2], b[0], a[1]}
	var got []uint32
	for _, f := range seq {
		if tick, snap, ok := r.Add(f.h, f.data, t0); ok {
			got = append(got, tick)
			require.Equal(t, snapshotData(tick, len(snap)), snap)
		}
	}
	require.Equal(t, []uint32{41}, got, "41 completes first; 40 is then stale")
	require.Equal(t, uint64(1), r.Dropped)
	require.Equal(t, uint64(1), r.Stale)
}

func TestReassembleAllocs(t *testing.T) {
	var r Reassembler
	snaps := make([][]fragment, 8)
	for i := range snaps {
		snaps[i] = fragments(t, uint32(i), snapshotData(uint32(i), 3*P), MaxDatagram)
	}
	tick := uint32(0)
	add := func() {
		for _, f := range snaps[tick%8] {
			f.h.Tick = tick
			if _, _, ok := r.Add(f.h, f.data, t0); ok {
				tick++
			}
		}
	}
	for range 16 { // warm-up: slot buffers grow to size
		add()
	}
	require.Equal(t, uint32(16), tick)
	allocs := testing.AllocsPerRun(1000, add)
	require.Zero(t, allocs)
	require.Greater(t, tick, uint32(1000), "every run completed a snapshot")
	require.Zero(t, r.Dropped)
	require.Zero(t, r.Stale)

	// Steady state with two snapshots interleaved also allocates nothing.
	add2 := func() {
		a, b := snaps[tick%8], snaps[(tick+1)%8]
		for i := range a {
			fa, fb := a[i], b[i]
			fa.h.Tick, fb.h.Tick = tick, tick+1
			r.Add(fa.h, fa.data, t0)
			r.Add(fb.h, fb.data, t0)
		}
		tick += 2
	}
	for range 16 {
		add2()
	}
	before := tick
	require.Zero(t, testing.AllocsPerRun(1000, add2))
	require.Greater(t, tick, before)
	require.Zero(t, r.Dropped)
	require.Zero(t, r.Stale)
}

func TestErrorsAreDistinct(t *testing.T) {
	all := []error{ErrShort, ErrUnknownKind, ErrTooLarge, ErrBadFragment, ErrSnapshotBig}
	for i, a := range all {
		for j, b := range all {
			require.Equal(t, i == j, errors.Is(a, b))
		}
	}
}

// inProgress reports whether a snapshot of tick is being reassembled.
func (r *Reassembler) inProgress(tick uint32) bool {
	for i := range r.slots {
		if r.slots[i].used && r.slots[i].tick == tick {
			return true
		}
	}
	return false
}

func TestReassemblerEpochs(t *testing.T) {
	var r Reassembler
	now := time.Unix(100, 0)
	add := func(tick uint32, epoch uint8) bool {
		_, _, ok := r.Add(SnapshotHeader{Tick: tick, Epoch: epoch, Count: 1}, []byte{1}, now)
		return ok
	}
	require.True(t, add(5000, 1))
	require.True(t, add(3, 2), "a newer epoch starts over at a lower tick")
	require.True(t, add(4, 2))
	require.False(t, add(5001, 1), "a late fragment of the earlier epoch is stale")
	require.False(t, add(4, 2), "ticks are compared within the epoch")
	require.True(t, add(1, 3))
	require.True(t, add(1, 130), "130 is newer than 3 (less than half the space ahead)")
	require.False(t, add(2, 3), "3 is older than 130")
	require.EqualValues(t, 3, r.Stale)
}

func TestReassemblerEpochSwitchMidSnapshot(t *testing.T) {
	var r Reassembler
	now := time.Unix(100, 0)
	_, _, ok := r.Add(SnapshotHeader{Tick: 100, Epoch: 1, Count: 1}, []byte{1}, now)
	require.True(t, ok)
	// The first fragment of the new stream's first snapshot arrives...
	_, _, ok = r.Add(SnapshotHeader{Tick: 2, Epoch: 2, Index: 0, Count: 2}, []byte{2}, now)
	require.False(t, ok)
	// ...then a late fragment of the old stream: stale, not delivered.
	_, _, ok = r.Add(SnapshotHeader{Tick: 101, Epoch: 1, Count: 1}, []byte{3}, now)
	require.False(t, ok, "a late fragment of an earlier epoch is never delivered")
	tick, data, ok := r.Add(SnapshotHeader{Tick: 2, Epoch: 2, Index: 1, Count: 2}, []byte{4}, now)
	require.True(t, ok, "the new stream's snapshot completes")
	require.Equal(t, uint32(2), tick)
	require.Equal(t, []byte{2, 4}, data)
}
