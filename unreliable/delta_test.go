package unreliable

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// Layout of the game snapshot in the delta tests and benchmarks: a room
// header, then 64 players and 200 props of 24 bytes each, 6400 bytes in all.
const (
	deltaRoomLen   = 64
	deltaEntityLen = 24
	deltaPlayers   = 64
	deltaProps     = 200
	deltaGameLen   = deltaRoomLen + (deltaPlayers+deltaProps)*deltaEntityLen
)

// deltaGameSnapshot is the game state at tick: only the players' positions,
// two little-endian float32s at the start of each player, move from tick to
// tick; the room header, the rest of each player and every prop stay put.
func deltaGameSnapshot(tick int) []byte {
	b := make([]byte, deltaGameLen)
	for i := range deltaRoomLen {
		b[i] = byte(i*31 + 7)
	}
	for p := range deltaPlayers + deltaProps {
		e := b[deltaRoomLen+p*deltaEntityLen:][:deltaEntityLen]
		x := float32(20 + p*13%400)
		y := float32(15 + p*29%300)
		if p < deltaPlayers {
			x += float32(tick) * 0.05 * float32(p%7+1)
			y -= float32(tick) * 0.03 * float32(p%5+1)
		}
		binary.LittleEndian.PutUint32(e[0:], math.Float32bits(x))
		binary.LittleEndian.PutUint32(e[4:], math.Float32bits(y))
		binary.LittleEndian.PutUint32(e[8:], uint32(p)+1000) // id
		binary.LittleEndian.PutUint16(e[12:], 100)           // health
		e[14] = byte(p % 4)                                  // team
		for i := 15; i < deltaEntityLen; i++ {
			e[i] = byte(p*i + 1)
		}
	}
	return b
}

// deltaRandom is n random bytes.
func deltaRandom(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// deltaMutate is a copy of b with a fraction of its bytes changed.
func deltaMutate(r *rand.Rand, b []byte, fraction float64) []byte {
	c := bytes.Clone(b)
	for i := range c {
		if r.Float64() < fraction {
			c[i] ^= byte(1 + r.IntN(255))
		}
	}
	return c
}

// deltaRuns checks that delta is well formed and returns its runs.
func deltaRuns(t testing.TB, delta []byte) (n int, runs [][2]int) {
	t.Helper()
	v, c := binary.Uvarint(delta)
	require.Positive(t, c)
	delta = delta[c:]
	for pos := 0; pos < int(v); {
		z, c := binary.Uvarint(delta)
		require.Positive(t, c)
		delta = delta[c:]
		l, c := binary.Uvarint(delta)
		require.Positive(t, c)
		delta = delta[c:]
		require.False(t, z == 0 && l == 0, "empty run")
		delta = delta[l:]
		runs = append(runs, [2]int{int(z), int(l)})
		pos += int(z + l)
		require.LessOrEqual(t, pos, int(v))
	}
	require.Empty(t, delta, "bytes after the last run")
	return int(v), runs
}

// checkDeltaRoundTrip encodes current against baseline, checks the delta's
// shape and decodes it back, and returns the delta.
func checkDeltaRoundTrip(t testing.TB, baseline, current []byte) []byte {
	t.Helper()
	var codec XORCodec
	prefix := []byte{0xde, 0xad}
	delta := codec.Encode(bytes.Clone(prefix), baseline, current)
	require.Equal(t, prefix, delta[:2])
	delta = delta[2:]

	n, runs := deltaRuns(t, delta)
	require.Equal(t, len(current), n)
	for i, r := range runs {
		if i > 0 {
			require.GreaterOrEqual(t, r[0], minZeroRun, "run %d: split on a short run of zeros", i)
		}
	}

	got, err := codec.Decode(bytes.Clone(prefix), baseline, delta)
	require.NoError(t, err)
	require.Equal(t, prefix, got[:2])
	require.True(t, bytes.Equal(current, got[2:]), "decoded %d bytes, want %d", len(got)-2, len(current))
	return delta
}

func TestXORCodecRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 63, 100, 1000, 1191, 6400, 65535, 70000} {
		base := deltaRandom(r, n)
		cases := []struct {
			name              string
			baseline, current []byte
		}{
			{"empty current", base, nil},
			{"empty baseline", nil, base},
			{"both empty", nil, nil},
			{"identical", base, bytes.Clone(base)},
			{"current longer", base[:n/2], deltaMutate(r, base, 0.1)},
			{"current longer, same prefix", base[:n/3], base},
			{"current shorter", base, deltaMutate(r, base[:n/2], 0.1)},
			{"current shorter, same prefix", base, base[:2*n/3]},
			{"1% changed", base, deltaMutate(r, base, 0.01)},
			{"10% changed", base, deltaMutate(r, base, 0.1)},
			{"100% changed", base, deltaMutate(r, base, 1)},
			{"unrelated", base, deltaRandom(r, n)},
			{"zeros", make([]byte, n), make([]byte, n)},
			{"zeros against empty", nil, make([]byte, n)},
			{"sparse against empty", nil, deltaMutate(r, make([]byte, n), 0.05)},
		}
		for _, tc := range cases {
			delta := checkDeltaRoundTrip(t, tc.baseline, tc.current)
			// Random bytes are the worst case: the delta barely grows.
			require.LessOrEqual(t, len(delta), len(tc.current)+8, "n=%d %s", n, tc.name)
			if tc.name == "identical" || tc.name == "zeros" || tc.name == "zeros against empty" {
				require.LessOrEqual(t, len(delta), 2*binary.MaxVarintLen32, "n=%d %s", n, tc.name)
			}
		}
	}
}

// Every pattern of short zero and nonzero runs, at every alignment to the
// 8-byte words the encoder scans.
func TestXORCodecRunPatterns(t *testing.T) {
	for pattern := range 1 << 12 {
		for shift := range 9 {
			current := make([]byte, shift+24)
			for i := shift; i < len(current); i++ {
				if pattern>>((i-shift)/2)&1 != 0 {
					current[i] = byte(i + 1)
				}
			}
			baseline := make([]byte, (pattern+shift)%len(current))
			for i := range baseline {
				baseline[i] = byte(i * 3)
				current[i] ^= baseline[i]
			}
			checkDeltaRoundTrip(t, baseline, current)
		}
	}
}

// The encodings in XORCodec's doc comment and others worked by hand.
func TestXORCodecEncoding(t *testing.T) {
	seq := func(from, n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(from + i)
		}
		return b
	}
	cases := []struct {
		name              string
		baseline, current []byte
		delta             string
	}{
		{"doc example", seq(1, 8), []byte{1, 2, 3, 4, 5, 6, 0x77, 8, 0xff}, "09" + "060370" + "00ff"},
		{"empty", nil, nil, "00"},
		{"empty current", seq(1, 8), nil, "00"},
		{"empty baseline", nil, []byte{0xaa, 0, 0xbb}, "03" + "0003aa00bb"},
		{"identical", seq(1, 5), seq(1, 5), "05" + "0500"},
		{"shorter, same prefix", seq(1, 8), seq(1, 3), "03" + "0300"},
		{"longer, same prefix", seq(1, 2), seq(1, 4), "04" + "0202" + "0304"},
		{"longer with zeros", seq(1, 2), []byte{1, 2, 0, 0, 0}, "05" + "0500"},
		{"two zeros stay in the literal", seq(1, 6), []byte{0x11, 2, 3, 0x14, 5, 6}, "06" + "0006" + "100000100000"},
		{"three zeros split", seq(1, 7), []byte{0x11, 2, 3, 4, 0x15, 6, 7}, "07" + "0001" + "10" + "0303" + "100000"},
		{"zeros at the end split", seq(1, 5), []byte{0x11, 2, 3, 4, 5}, "05" + "0001" + "10" + "0400"},
		{"short zeros at both ends", seq(1, 4), []byte{1, 0, 3, 4}, "04" + "0103" + "020000"},
		{"128 bytes", nil, bytes.Repeat([]byte{1}, 128), "8001" + "008001" + hex.EncodeToString(bytes.Repeat([]byte{1}, 128))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			delta := XORCodec{}.Encode(nil, tc.baseline, tc.current)
			require.Equal(t, tc.delta, hex.EncodeToString(delta))
			got, err := XORCodec{}.Decode(nil, tc.baseline, delta)
			require.NoError(t, err)
			require.True(t, bytes.Equal(tc.current, got))
		})
	}
}

// Decode accepts any split into runs, not only the encoder's.
func TestXORCodecDecodeOtherSplits(t *testing.T) {
	baseline := []byte{1, 2, 3, 4, 5}
	want := []byte{1, 2, 0x33, 4, 5, 0, 7}
	for _, delta := range []string{
		"07" + "0201" + "30" + "0301" + "07",                           // as Encode does
		"07" + "0200" + "0001" + "30" + "0300" + "0001" + "07",         // zeros and literals apart
		"07" + "0201" + "30" + "0003" + "000000" + "0001" + "07",       // literal zeros
		"07" + "0007" + "00003000000007",                               // all literal
		"07" + "0201" + "30" + "0100" + "0200" + "0001" + "07",         // runs of zeros split
		"8700" + "8200" + "8100" + "30" + "838000" + "81808000" + "07", // non-minimal varints
	} {
		got, err := XORCodec{}.Decode(nil, baseline, mustHex(t, delta))
		require.NoError(t, err, delta)
		require.Equal(t, want, got, delta)
	}
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	return b
}

func TestXORCodecDecodeEmptyBaseline(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	base := deltaRandom(r, 300)
	current := deltaMutate(r, base, 0.1)
	delta := XORCodec{}.Encode(nil, base, current)
	// Against zeros, a delta decodes to its XOR values.
	got, err := XORCodec{}.Decode(nil, nil, delta)
	require.NoError(t, err)
	require.Len(t, got, len(current))
	for i := range got {
		require.Equal(t, current[i]^base[i], got[i], "byte %d", i)
	}
	got2, err := XORCodec{}.Decode(nil, make([]byte, 1000), delta)
	require.NoError(t, err)
	require.Equal(t, got, got2)
}

func TestXORCodecIdenticalIsTiny(t *testing.T) {
	snap := deltaGameSnapshot(5)
	require.Len(t, snap, 6400)
	delta := XORCodec{}.Encode(nil, snap, bytes.Clone(snap))
	require.Less(t, len(delta), 16)
	require.Equal(t, "8032"+"803200", hex.EncodeToString(delta))
	for _, n := range []int{6 * 1024, MaxSnapshot} {
		snap := deltaRandom(rand.New(rand.NewPCG(uint64(n), 0)), n)
		require.Less(t, len(XORCodec{}.Encode(nil, snap, snap)), 16, n)
	}
}

func TestXORCodecGameSnapshot(t *testing.T) {
	for tick := range 50 {
		base, cur := deltaGameSnapshot(tick), deltaGameSnapshot(tick+1)
		delta := checkDeltaRoundTrip(t, base, cur)
		// Each moving player costs at most a run header and its 8
		// position bytes.
		require.LessOrEqual(t, len(delta), 2+deltaPlayers*(2+8)+3, "tick %d", tick)
		// Against an older baseline, as after loss.
		checkDeltaRoundTrip(t, deltaGameSnapshot(0), cur)
	}
	delta := XORCodec{}.Encode(nil, deltaGameSnapshot(100), deltaGameSnapshot(101))
	t.Logf("game snapshot of %d bytes: delta of %d bytes (%.1f%%)", deltaGameLen, len(delta), 100*float64(len(delta))/deltaGameLen)
}

func TestMaxSnapshot(t *testing.T) {
	require.Equal(t, MaxFragments*FragmentPayload(MaxDatagram), MaxSnapshot)
	_, err := FragmentCount(MaxSnapshot, MaxDatagram)
	require.NoError(t, err)
	_, err = FragmentCount(MaxSnapshot+1, MaxDatagram)
	require.ErrorIs(t, err, ErrSnapshotBig)
}

func TestXORCodecDecodeLimits(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{MaxSnapshot - 1, MaxSnapshot} {
		checkDeltaRoundTrip(t, nil, deltaRandom(r, n))
		checkDeltaRoundTrip(t, deltaRandom(r, n), deltaRandom(r, n))
	}

	// The largest snapshot from the smallest delta: all zeros.
	delta := binary.AppendUvarint(nil, MaxSnapshot)
	delta = binary.AppendUvarint(delta, MaxSnapshot)
	delta = append(delta, 0)
	got, err := XORCodec{}.Decode(nil, nil, delta)
	require.NoError(t, err)
	require.Equal(t, make([]byte, MaxSnapshot), got)

	// One byte more is refused, however the delta reads.
	big := deltaRandom(r, MaxSnapshot+1)
	for _, d := range [][]byte{
		XORCodec{}.Encode(nil, nil, big),
		XORCodec{}.Encode(nil, big, big),
		XORCodec{}.Encode(nil, nil, make([]byte, MaxSnapshot+1)),
	} {
		got, err := XORCodec{}.Decode(nil, big, d)
		require.ErrorIs(t, err, ErrBadDelta)
		require.Nil(t, got)
	}
}

// A delta that claims a large snapshot but does not describe it costs no
// snapshot-sized buffer: Decode checks the whole delta before it grows dst.
func TestXORCodecDecodeRefusesBeforeAllocating(t *testing.T) {
	uv := func(vs ...uint64) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.AppendUvarint(b, v)
		}
		return b
	}
	deltas := [][]byte{
		uv(MaxSnapshot),
		uv(MaxSnapshot, MaxSnapshot-100, 1), // then a missing literal
		uv(MaxSnapshot, MaxSnapshot-1, 0),   // runs end short
	}
	const runs = 100
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		for _, d := range deltas {
			if _, err := (XORCodec{}).Decode(nil, nil, d); !errors.Is(err, ErrBadDelta) {
				t.Fatal(err)
			}
		}
	}
	runtime.ReadMemStats(&after)
	perDecode := (after.TotalAlloc - before.TotalAlloc) / uint64(runs*len(deltas))
	require.Less(t, perDecode, uint64(1024), "bytes allocated per refused delta")
}

func TestXORCodecDecodeErrors(t *testing.T) {
	uv := func(vs ...uint64) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.AppendUvarint(b, v)
		}
		return b
	}
	maxU64 := []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}
	cases := []struct {
		name  string
		delta []byte
	}{
		{"empty", nil},
		{"truncated length", []byte{0x80}},
		{"truncated long length", []byte{0xc0, 0xd3}},
		{"overflowing length", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}},
		{"length over MaxSnapshot", append(uv(MaxSnapshot+1, MaxSnapshot+1), 0)},
		{"length 2^63", append(uv(1<<63, 1<<63), 0)},
		{"length 2^64-1", append(bytes.Clone(maxU64), 0x00, 0x00)},
		{"no runs", uv(5)},
		{"truncated zeros", []byte{0x05, 0x80}},
		{"overflowing zeros", append([]byte{0x05}, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x00)},
		{"missing literal length", []byte{0x05, 0x02}},
		{"truncated literal length", []byte{0x05, 0x02, 0x80}},
		{"truncated literal", []byte{0x05, 0x00, 0x05, 1, 2, 3}},
		{"truncated literal at the end", []byte{0x05, 0x02, 0x03, 1, 2}},
		{"zeros overrun", []byte{0x05, 0x06, 0x00}},
		{"literal overruns", []byte{0x02, 0x00, 0x03, 1, 2, 3}},
		{"zeros and literal overrun", []byte{0x05, 0x03, 0x03, 1, 2, 3}},
		{"second run overruns", []byte{0x05, 0x02, 0x01, 0xaa, 0x03, 0x00}},
		{"huge zeros", append(append([]byte{0x05}, maxU64...), 0x00)},
		{"huge literal", append([]byte{0x05, 0x00}, maxU64...)},
		{"zeros + literal wrap around", append(uv(5, 2), maxU64...)},
		{"runs end short", []byte{0x05, 0x02, 0x01, 0xaa}},
		{"runs end short by one", []byte{0x05, 0x04}},
		{"trailing byte after empty", []byte{0x00, 0x00}},
		{"trailing run after empty", []byte{0x00, 0x01, 0x00}},
		{"trailing byte", []byte{0x02, 0x02, 0x00, 0x00}},
		{"trailing literal byte", []byte{0x01, 0x00, 0x01, 0xaa, 0xbb}},
		{"empty run", []byte{0x02, 0x00, 0x00, 0x02, 0x00}},
		{"empty run after a run", []byte{0x04, 0x02, 0x00, 0x00, 0x00, 0x02, 0x00}},
		{"non-minimal empty run", []byte{0x02, 0x80, 0x00, 0x80, 0x00, 0x02, 0x00}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, baseline := range [][]byte{nil, bytes.Repeat([]byte{0x5a}, 10)} {
				dst := append(make([]byte, 0, 64), "kept"...)
				got, err := XORCodec{}.Decode(dst, baseline, tc.delta)
				require.ErrorIs(t, err, ErrBadDelta)
				require.Equal(t, "kept", string(got), "dst comes back unchanged")
				require.Equal(t, "kept", string(dst[:cap(dst)][:4]))
				require.Zero(t, dst[:cap(dst)][4], "nothing written past dst")
			}
		})
	}
}

func TestErrBadDeltaIsDistinct(t *testing.T) {
	for _, err := range []error{ErrShort, ErrUnknownKind, ErrTooLarge, ErrBadFragment, ErrSnapshotBig} {
		require.NotErrorIs(t, ErrBadDelta, err)
		require.NotErrorIs(t, err, ErrBadDelta)
	}
}

func TestXORCodecAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	random := deltaRandom(r, 6400)
	pairs := []struct {
		name              string
		baseline, current []byte
	}{
		{"game", deltaGameSnapshot(10), deltaGameSnapshot(11)},
		{"empty baseline", nil, deltaGameSnapshot(11)},
		{"10% changed", random, deltaMutate(r, random, 0.1)},
		{"all changed, longer", random[:3000], deltaRandom(r, 6400)},
		{"shorter", random, random[:100]},
	}
	var codec Codec = XORCodec{}
	for _, p := range pairs {
		delta := codec.Encode(nil, p.baseline, p.current)
		enc := make([]byte, 0, len(delta))
		dec := make([]byte, 0, len(p.current))
		encAllocs := testing.AllocsPerRun(100, func() {
			enc = codec.Encode(enc[:0], p.baseline, p.current)
		})
		decAllocs := testing.AllocsPerRun(100, func() {
			var err error
			if dec, err = codec.Decode(dec[:0], p.baseline, delta); err != nil {
				t.Fatal(err)
			}
		})
		require.Zero(t, encAllocs, "%s: Encode", p.name)
		require.Zero(t, decAllocs, "%s: Decode", p.name)
		require.Equal(t, delta, enc, p.name)
		require.True(t, bytes.Equal(p.current, dec), p.name)
	}
}

func FuzzDelta(f *testing.F) {
	// Seeds stay small: the fuzzer minimizes every new input it finds, and
	// minimizing kilobytes takes longer than a short fuzzing run.
	const gameLen = deltaRoomLen + 4*deltaEntityLen
	game0, game1 := deltaGameSnapshot(0)[:gameLen], deltaGameSnapshot(1)[:gameLen]
	f.Add(game0, game1, XORCodec{}.Encode(nil, game0, game1))
	f.Add(game1, game0[:100], XORCodec{}.Encode(nil, game0[:50], game1))
	f.Add([]byte{}, []byte{}, []byte{0x00})
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8}, []byte{1, 2, 3, 4, 5, 6, 0x77, 8, 0xff}, []byte{0x09, 0x06, 0x03, 0x70, 0x00, 0xff})
	f.Add([]byte{}, []byte("hello, hello, hello\x00\x00\x00\x00"), append(binary.AppendUvarint(nil, MaxSnapshot), 0xc0, 0xd3, 0x04, 0x00))
	f.Add([]byte("abc"), []byte("abcdefgh"), []byte{0x05, 0x03, 0x03, 1, 2, 3})
	f.Add([]byte("abcdefghijklmnopq"), []byte("abcXefghijklmnopqrstuvwxyz"), []byte{0x05, 0x02, 0x01, 0xaa})

	var codec XORCodec
	// Buffers reused across runs, which are sequential: a few bytes of
	// delta may stand for MaxSnapshot bytes of snapshot, and allocating
	// those on every run slows the fuzzer, minimizing above all.
	var delta, snap, again []byte
	f.Fuzz(func(t *testing.T, baseline, current, garbage []byte) {
		if len(current) <= MaxSnapshot {
			var err error
			delta = codec.Encode(delta[:0], baseline, current)
			if snap, err = codec.Decode(snap[:0], baseline, delta); err != nil {
				t.Fatalf("decoding an encoded delta: %v", err)
			}
			if !bytes.Equal(snap, current) {
				t.Fatalf("round trip: got %x, want %x", snap, current)
			}
		}

		got, err := codec.Decode(append(snap[:0], 0xee), baseline, garbage)
		snap = got
		if err != nil {
			if !errors.Is(err, ErrBadDelta) {
				t.Fatalf("error %v does not wrap ErrBadDelta", err)
			}
			if len(got) != 1 || got[0] != 0xee {
				t.Fatalf("dst changed on error: %x", got)
			}
			return
		}
		if len(got) == 0 || got[0] != 0xee {
			t.Fatalf("dst prefix lost: %x", got)
		}
		decoded := got[1:]
		if len(decoded) > MaxSnapshot {
			t.Fatalf("decoded %d bytes > %d", len(decoded), MaxSnapshot)
		}
		if n, c := binary.Uvarint(garbage); c <= 0 || n != uint64(len(decoded)) {
			t.Fatalf("decoded %d bytes, delta declares %d", len(decoded), n)
		}
		// What decodes re-encodes to a delta that decodes the same.
		delta = codec.Encode(delta[:0], baseline, decoded)
		if again, err = codec.Decode(again[:0], baseline, delta); err != nil || !bytes.Equal(again, decoded) {
			t.Fatalf("re-encoding a decoded snapshot: %v", err)
		}
	})
}

// BenchmarkXORCodecEncode encodes one tick of a 6400-byte game snapshot:
// 200 props that never change, 64 players whose two float32 positions move.
func BenchmarkXORCodecEncode(b *testing.B) {
	base, cur := deltaGameSnapshot(100), deltaGameSnapshot(101)
	dst := make([]byte, 0, 2*len(cur))
	b.ReportAllocs()
	b.SetBytes(int64(len(cur)))
	for b.Loop() {
		dst = XORCodec{}.Encode(dst[:0], base, cur)
	}
	b.ReportMetric(float64(len(dst)), "delta-bytes")
}

func BenchmarkXORCodecDecode(b *testing.B) {
	base, cur := deltaGameSnapshot(100), deltaGameSnapshot(101)
	delta := XORCodec{}.Encode(nil, base, cur)
	dst := make([]byte, 0, len(cur))
	b.ReportAllocs()
	b.SetBytes(int64(len(cur)))
	for b.Loop() {
		var err error
		if dst, err = (XORCodec{}).Decode(dst[:0], base, delta); err != nil {
			b.Fatal(err)
		}
	}
	if !bytes.Equal(dst, cur) {
		b.Fatal("wrong snapshot")
	}
	b.ReportMetric(float64(len(delta)), "delta-bytes")
}
