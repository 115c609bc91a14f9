package unreliable

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"
)

// Codec turns a snapshot into a delta against a baseline the receiver holds,
// and back. A game may plug in its own.
type Codec interface {
	// Encode appends to dst the delta that turns baseline into current.
	// baseline may be empty (then the delta carries current whole).
	Encode(dst, baseline, current []byte) []byte
	// Decode appends to dst the snapshot that delta turns baseline into.
	// It must check every length in delta against MaxSnapshot before
	// allocating or writing, and return an error wrapping ErrBadDelta for
	// malformed input; it must never panic.
	Decode(dst, baseline, delta []byte) ([]byte, error)
}

// MaxSnapshot is the largest snapshot a delta may describe:
// MaxFragments * FragmentPayload(MaxDatagram).
const MaxSnapshot = MaxFragments * (MaxDatagram - HeaderLen - SnapshotHeaderLen)

// ErrBadDelta is returned, wrapped with detail, for a delta that does not
// decode.
var ErrBadDelta = errors.New("unreliable: malformed delta")

// XORCodec is the default Codec; it works on any game's bytes. The zero value
// is ready. It holds no state, so one value may be used concurrently; dst must
// not share memory with baseline, current or delta.
//
// A delta is the snapshot XORed with the baseline, x[i] = current[i] ^
// baseline[i] for i < len(current), where the baseline is taken as zero bytes
// beyond its length and its bytes beyond len(current) are ignored. x is sent as
//
//	uvarint(len(current)) | run | run | ...
//	run = uvarint(zeros) | uvarint(literalLen) | literal[literalLen]
//
// uvarint is encoding/binary's unsigned varint: 7 bits a byte, least
// significant group first, the high bit set on every byte but the last. Each
// run describes zeros bytes where x is 0 (the snapshot equals the baseline),
// then literalLen bytes where literal holds x itself, not the snapshot's bytes.
// Runs follow one another until they describe exactly len(current) bytes, and
// the delta ends there. A run may have zeros = 0 or literalLen = 0 but not
// both; an empty snapshot has no runs, so its delta is the single byte 0x00.
//
// Decode rejects with ErrBadDelta a length over MaxSnapshot, a truncated or
// overflowing varint, a run of zero length, runs that overrun the length or
// end short of it, and bytes after the last run. It accepts any split into
// runs (and varints binary.Uvarint accepts), so the encoder's choice is not
// part of the format: Encode ends a literal only at 3 or more zero bytes of x,
// since a shorter run of zeros costs no more sent as literal.
//
// For example, with baseline 01 02 03 04 05 06 07 08 and current
// 01 02 03 04 05 06 77 08 ff, x is 00 00 00 00 00 00 70 00 ff and the delta is
//
//	09 | 06 03 70 00 ff
//
// Encode and Decode allocate only when dst lacks the capacity. Decode checks
// the whole delta before it writes, so on error it returns dst unchanged.
type XORCodec struct{}

var _ Codec = XORCodec{}

// minZeroRun is the shortest run of zero bytes of x that Encode sends as a
// run of its own rather than inside a literal. Ending a literal at z zeros
// costs at least two varint bytes (the zeros and the next literal length), so
// splitting saves nothing below 3.
const minZeroRun = 3

// Masks for finding a zero byte in a word: w has one when
// (w - lowBits) &^ w & highBits != 0, and the lowest set bit of that marks the
// first one.
const (
	lowBits  = 0x0101010101010101
	highBits = 0x8080808080808080
)

// Encode appends to dst the delta that turns baseline into current. A current
// longer than MaxSnapshot gives a delta that Decode refuses.
func (XORCodec) Encode(dst, baseline, current []byte) []byte {
	n := len(current)
	dst = binary.AppendUvarint(dst, uint64(n))
	pos, lit := 0, firstDiff(baseline, current, 0)
	for pos < n {
		end, next := literalEnd(baseline, current, lit)
		dst = binary.AppendUvarint(dst, uint64(lit-pos))
		dst = binary.AppendUvarint(dst, uint64(end-lit))
		dst = appendXOR(dst, baseline, current, lit, end)
		pos, lit = end, next
	}
	return dst
}

// firstDiff returns the first index at or after i where current differs from
// baseline (x is not zero), or len(current).
func firstDiff(baseline, current []byte, i int) int {
	m := min(len(baseline), len(current))
	// Most runs of zeros are short, and the rest long: look at a few words,
	// then skip 64 bytes at a time.
	for end := min(i+32, m); i+8 <= end; i += 8 {
		if w := binary.LittleEndian.Uint64(current[i:]) ^ binary.LittleEndian.Uint64(baseline[i:]); w != 0 {
			return i + bits.TrailingZeros64(w)/8
		}
	}
	for ; i+64 <= m; i += 64 {
		if !bytes.Equal(current[i:i+64], baseline[i:i+64]) {
			break
		}
	}
	for ; i+8 <= m; i += 8 {
		if w := binary.LittleEndian.Uint64(current[i:]) ^ binary.LittleEndian.Uint64(baseline[i:]); w != 0 {
			return i + bits.TrailingZeros64(w)/8
		}
	}
	for ; i < m; i++ {
		if current[i] != baseline[i] {
			return i
		}
	}
	for ; i+32 <= len(current); i += 32 {
		c := current[i : i+32]
		if binary.LittleEndian.Uint64(c)|binary.LittleEndian.Uint64(c[8:])|binary.LittleEndian.Uint64(c[16:])|binary.LittleEndian.Uint64(c[24:]) != 0 {
			break
		}
	}
	for ; i+8 <= len(current); i += 8 {
		if w := binary.LittleEndian.Uint64(current[i:]); w != 0 {
			return i + bits.TrailingZeros64(w)/8
		}
	}
	for ; i < len(current); i++ {
		if current[i] != 0 {
			return i
		}
	}
	return len(current)
}

// firstSame returns the first index at or after i where current equals
// baseline (x is zero), or len(current).
func firstSame(baseline, current []byte, i int) int {
	m := min(len(baseline), len(current))
	for ; i+8 <= m; i += 8 {
		w := binary.LittleEndian.Uint64(current[i:]) ^ binary.LittleEndian.Uint64(baseline[i:])
		if z := (w - lowBits) &^ w & highBits; z != 0 {
			return i + bits.TrailingZeros64(z)/8
		}
	}
	for ; i < m; i++ {
		if current[i] == baseline[i] {
			return i
		}
	}
	for ; i+8 <= len(current); i += 8 {
		w := binary.LittleEndian.Uint64(current[i:])
		if z := (w - lowBits) &^ w & highBits; z != 0 {
			return i + bits.TrailingZeros64(z)/8
		}
	}
	for ; i < len(current); i++ {
		if current[i] == 0 {
			return i
		}
	}
	return len(current)
}

// literalEnd returns where the literal starting at i ends, at the first run
// of minZeroRun or more zero bytes of x or at len(current), and where the
// literal after that run starts. Shorter zero runs stay in the literal, even
// at the end of current.
func literalEnd(baseline, current []byte, i int) (end, next int) {
	n := len(current)
	for i < n {
		z := firstSame(baseline, current, i)
		if z == n {
			break
		}
		e := firstDiff(baseline, current, z)
		if e-z >= minZeroRun {
			return z, e
		}
		i = e
	}
	return n, n
}

// appendXOR appends x[lo:hi].
func appendXOR(dst, baseline, current []byte, lo, hi int) []byte {
	k := len(dst)
	dst = slices.Grow(dst, hi-lo)[:k+hi-lo]
	out := dst[k:]
	m := max(0, min(hi, len(baseline))-lo)
	xorBytes(out[:m], current[lo:], baseline[min(lo, len(baseline)):])
	copy(out[m:], current[lo+m:hi])
	return dst
}

// xorBytes sets out[i] = a[i] ^ b[i] for every i < len(out); a and b must be
// at least as long as out.
func xorBytes(out, a, b []byte) {
	a, b = a[:len(out)], b[:len(out)]
	i := 0
	for ; i+8 <= len(out); i += 8 {
		binary.LittleEndian.PutUint64(out[i:], binary.LittleEndian.Uint64(a[i:])^binary.LittleEndian.Uint64(b[i:]))
	}
	for ; i < len(out); i++ {
		out[i] = a[i] ^ b[i]
	}
}

// Decode appends to dst the snapshot that delta turns baseline into. An empty
// baseline is taken as zero bytes.
func (XORCodec) Decode(dst, baseline, delta []byte) ([]byte, error) {
	n, runs, err := checkDelta(delta)
	if err != nil {
		return dst, err
	}
	k := len(dst)
	dst = slices.Grow(dst, n)[:k+n]
	out := dst[k:]
	for pos := 0; pos < n; {
		z, c := binary.Uvarint(runs)
		runs = runs[c:]
		l, c := binary.Uvarint(runs)
		runs = runs[c:]
		end := pos + int(z)
		copyBaseline(out[pos:end], baseline, pos)
		pos = end
		end = pos + int(l)
		m := max(0, min(end, len(baseline))-pos)
		xorBytes(out[pos:pos+m], runs, baseline[min(pos, len(baseline)):])
		copy(out[pos+m:end], runs[m:l])
		runs = runs[l:]
		pos = end
	}
	return dst, nil
}

// copyBaseline fills out with baseline[off:], then zeros beyond its end.
func copyBaseline(out, baseline []byte, off int) {
	c := 0
	if off < len(baseline) {
		c = copy(out, baseline[off:])
	}
	clear(out[c:])
}

// checkDelta validates a whole delta without writing anything and returns the
// snapshot length and the runs.
func checkDelta(delta []byte) (int, []byte, error) {
	v, c := binary.Uvarint(delta)
	if c <= 0 {
		return 0, nil, fmt.Errorf("%w: bad length varint", ErrBadDelta)
	}
	if v > MaxSnapshot {
		return 0, nil, fmt.Errorf("%w: snapshot of %d bytes > %d", ErrBadDelta, v, MaxSnapshot)
	}
	n, runs := int(v), delta[c:]
	rest := runs
	for pos := 0; pos < n; {
		if len(rest) == 0 {
			return 0, nil, fmt.Errorf("%w: runs describe %d of %d bytes", ErrBadDelta, pos, n)
		}
		z, c := binary.Uvarint(rest)
		if c <= 0 {
			return 0, nil, fmt.Errorf("%w: bad zeros varint at byte %d", ErrBadDelta, len(delta)-len(rest))
		}
		rest = rest[c:]
		l, c := binary.Uvarint(rest)
		if c <= 0 {
			return 0, nil, fmt.Errorf("%w: bad literal length varint at byte %d", ErrBadDelta, len(delta)-len(rest))
		}
		rest = rest[c:]
		switch left := uint64(n - pos); {
		case z == 0 && l == 0:
			return 0, nil, fmt.Errorf("%w: empty run at snapshot byte %d", ErrBadDelta, pos)
		case z > left || l > left-z:
			return 0, nil, fmt.Errorf("%w: run of %d+%d bytes at snapshot byte %d overruns %d", ErrBadDelta, z, l, pos, n)
		case l > uint64(len(rest)):
			return 0, nil, fmt.Errorf("%w: literal of %d bytes with %d left", ErrBadDelta, l, len(rest))
		}
		rest = rest[l:]
		pos += int(z + l)
	}
	if len(rest) != 0 {
		return 0, nil, fmt.Errorf("%w: %d bytes after the last run", ErrBadDelta, len(rest))
	}
	return n, runs, nil
}
