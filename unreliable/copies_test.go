package unreliable

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReliableFrames(t *testing.T) {
	ev := []byte{0x03, 0x00, 0x00, 0x03, 0x02, 'h', 'i'}           // EVENT "hi"
	ping := []byte{0x07, 0x00, 0x00, 0x08, 1, 2, 3, 4, 5, 6, 7, 8} // PING
	body := append(AppendReliableHeader(nil, 41, 2), ev...)
	body = append(body, ping...)
	var nums []uint32
	var frames [][]byte
	require.NoError(t, ReliableFrames(body, 64, func(n uint32, f []byte) {
		nums = append(nums, n)
		frames = append(frames, f)
	}))
	require.Equal(t, []uint32{41, 42}, nums)
	require.Equal(t, [][]byte{ev, ping}, frames)

	wrap := AppendReliableHeader(nil, 0xffffffff, 2)
	wrap = append(append(wrap, ev...), ev...)
	nums = nums[:0]
	require.NoError(t, ReliableFrames(wrap, 64, func(n uint32, _ []byte) { nums = append(nums, n) }))
	require.Equal(t, []uint32{0xffffffff, 0}, nums, "numbers wrap")

	bad := map[string][]byte{
		"short":         {0, 0, 0, 1},
		"count 0":       AppendReliableHeader(nil, 1, 0),
		"count too big": append(AppendReliableHeader(nil, 1, 2), ev...),
		"trailing":      append(append(AppendReliableHeader(nil, 1, 1), ev...), 0),
		"cut header":    append(AppendReliableHeader(nil, 1, 1), 0x03, 0x00),
		"cut body":      append(AppendReliableHeader(nil, 1, 1), ev[:5]...),
		"over limit":    append(AppendReliableHeader(nil, 1, 1), ping...),
	}
	for name, b := range bad {
		limit := 64
		if name == "over limit" {
			limit = 7
		}
		called := false
		err := ReliableFrames(b, limit, func(uint32, []byte) { called = true })
		require.Error(t, err, name)
		require.False(t, called, "%s: no frame is handed out of a bad body", name)
		if name == "short" {
			require.ErrorIs(t, err, ErrShort)
		} else {
			require.ErrorIs(t, err, ErrBadCopies, name)
		}
	}
}

func FuzzReliableFrames(f *testing.F) {
	f.Add(append(AppendReliableHeader(nil, 1, 1), 0x03, 0x00, 0x00, 0x01, 0x01))
	f.Add(AppendReliableHeader(nil, 7, 3))
	f.Add([]byte{0, 0, 0, 1, 1, 3, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, body []byte) {
		total := ReliableHeaderLen
		next := uint32(0)
		first := true
		err := ReliableFrames(body, 1024, func(n uint32, fr []byte) {
			if !first {
				require.Equal(t, next, n, "consecutive numbers")
			}
			first = false
			next = n + 1
			require.GreaterOrEqual(t, len(fr), frameHeaderLen)
			require.LessOrEqual(t, len(fr)-frameHeaderLen, 1024)
			total += len(fr)
		})
		if err == nil {
			require.Equal(t, len(body), total, "the frames cover the body exactly")
		}
	})
}
