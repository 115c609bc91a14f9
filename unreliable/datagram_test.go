package unreliable

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestHeaderRoundTrip(t *testing.T) {
	cases := []struct {
		h    Header
		body []byte
		wire string
	}{
		{Header{Kind: KindSnapshot, Seq: 0}, nil, "010000000000000000"},
		{Header{Kind: KindSnapshot, Seq: 0x0102}, []byte{0xaa}, "010102000000000000aa"},
		{Header{Kind: KindInput, Seq: 7, Ack: 0x0304, AckBits: 0x80000001}, []byte{0x7f, 0x81}, "020007030480000001" + "7f81"},
		{Header{Kind: KindInput, Seq: 0xffff}, bytes.Repeat([]byte{1}, MaxDatagram-HeaderLen), ""},
		{Header{Kind: KindAck, Seq: 0x8000, Ack: 0xffff, AckBits: 0xffffffff}, []byte{}, "038000ffffffffffff"},
		{Header{Kind: KindEvent, Seq: 1}, []byte{0}, "04000100000000000000"},
	}
	for _, tc := range cases {
		prefix := []byte("pre")
		d := AppendHeader(append([]byte(nil), prefix...), tc.h)
		require.Equal(t, prefix, d[:len(prefix)], "AppendHeader must append")
		d = append(d[len(prefix):], tc.body...)
		if tc.wire != "" {
			require.Equal(t, tc.wire, hex.EncodeToString(d))
		}
		h, body, err := ParseHeader(d)
		require.NoError(t, err)
		require.Equal(t, tc.h, h)
		require.Equal(t, len(tc.body), len(body))
		require.True(t, bytes.Equal(tc.body, body))
		if len(body) > 0 {
			require.Same(t, &d[HeaderLen], &body[0], "the body aliases the datagram")
		}
	}
}

func TestParseHeaderErrors(t *testing.T) {
	cases := []struct {
		name string
		d    []byte
		want error
	}{
		{"nil", nil, ErrShort},
		{"1 byte", []byte{1}, ErrShort},
		{"2 bytes", []byte{1, 0}, ErrShort},
		{"8 bytes", []byte{1, 0, 1, 0, 0, 0, 0, 0}, ErrShort},
		{"1201 bytes", append(make([]byte, HeaderLen), make([]byte, MaxDatagram-HeaderLen+1)...), ErrTooLarge},
		{"64 KiB", append([]byte{2, 0, 0}, make([]byte, 64<<10)...), ErrTooLarge},
		{"too large beats unknown kind", append([]byte{9, 0, 0}, make([]byte, MaxDatagram)...), ErrTooLarge},
		{"kind 0", []byte{0, 0, 1, 0, 0, 0, 0, 0, 0}, ErrUnknownKind},
		{"kind 6", []byte{6, 0, 1, 0, 0, 0, 0, 0, 0, 5}, ErrUnknownKind},
		{"kind 0xff", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, ErrUnknownKind},
	}
	sentinels := []error{ErrShort, ErrUnknownKind, ErrTooLarge, ErrBadFragment, ErrSnapshotBig}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, body, err := ParseHeader(tc.d)
			require.ErrorIs(t, err, tc.want)
			require.Nil(t, body)
			for _, s := range sentinels {
				require.Equal(t, s == tc.want, errors.Is(err, s), "%v", s)
			}
			require.True(t, strings.HasPrefix(err.Error(), "unreliable: "), err.Error())
		})
	}

	t.Run("limits accepted", func(t *testing.T) {
		h, body, err := ParseHeader([]byte{2, 0, 9, 0, 0, 0, 0, 0, 0})
		require.NoError(t, err)
		require.Equal(t, Header{Kind: KindInput, Seq: 9}, h)
		require.Empty(t, body)

		d := append([]byte{1, 0, 9, 0, 0, 0, 0, 0, 0}, make([]byte, MaxDatagram-HeaderLen)...)
		_, body, err = ParseHeader(d)
		require.NoError(t, err)
		require.Len(t, body, MaxDatagram-HeaderLen)
	})
}

func TestKindString(t *testing.T) {
	require.Equal(t, "SNAPSHOT", KindSnapshot.String())
	require.Equal(t, "INPUT", KindInput.String())
	require.Equal(t, "Kind(0x00)", Kind(0).String())
	require.Equal(t, "Kind(0xab)", Kind(0xab).String())
}

func TestSeqNewer(t *testing.T) {
	cases := []struct {
		a, b uint16
		want bool
	}{
		{1, 0, true},
		{0, 1, false},
		{0, 0, false},
		{0xffff, 0xffff, false},
		{0, 0xffff, true}, // PROTOCOL.md 5.5: 0 is newer than 65535
		{0xffff, 0, false},
		{5, 0xfff0, true},
		{0xfff0, 5, false},
		{32767, 0, true},  // 32767 is newer than 0
		{32768, 0, false}, // 32768 is not newer than 0
		{0, 32768, false}, // nor the other way: exactly half is neither
		{0, 32769, true},
		{32769, 0, false},
		{0x8000, 0x0001, true},
		{0x8001, 0x0001, false},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, SeqNewer(tc.a, tc.b), "SeqNewer(%d, %d)", tc.a, tc.b)
	}

	// Property, over samples of the whole space: a+d is newer than a for
	// every d in 1..2^15-1, and a is then not newer than a+d.
	for a := 0; a < 1<<16; a += 251 {
		for _, d := range []uint16{1, 2, 100, 1<<15 - 1} {
			x, y := uint16(a)+d, uint16(a)
			require.True(t, SeqNewer(x, y), "%d vs %d", x, y)
			require.False(t, SeqNewer(y, x), "%d vs %d", y, x)
		}
		require.False(t, SeqNewer(uint16(a)+1<<15, uint16(a)))
		require.False(t, SeqNewer(uint16(a), uint16(a)+1<<15))
	}
}

func TestTickNewer(t *testing.T) {
	const half = 1 << 31
	cases := []struct {
		a, b uint32
		want bool
	}{
		{1, 0, true},
		{0, 1, false},
		{7, 7, false},
		{0, 0xffffffff, true},
		{0xffffffff, 0, false},
		{10, 0xfffffff0, true},
		{0xfffffff0, 10, false},
		{half - 1, 0, true},
		{half, 0, false},
		{0, half, false},
		{0, half + 1, true},
		{half + 1, 0, false},
		{0x80000005, 6, true},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, TickNewer(tc.a, tc.b), "TickNewer(%d, %d)", tc.a, tc.b)
	}
	for a := uint64(0); a < 1<<32; a += 0x01010101 {
		for _, d := range []uint32{1, 64, 1 << 20, half - 1} {
			x, y := uint32(a)+d, uint32(a)
			require.True(t, TickNewer(x, y))
			require.False(t, TickNewer(y, x))
		}
		require.False(t, TickNewer(uint32(a)+half, uint32(a)))
	}
}
