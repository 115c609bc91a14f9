package netcode

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The replay log keeps frames from its start, forgets what an ACKED
// covers, and takes an ACKED beyond what was sent (a peer's bad number)
// as covering everything, without a panic.
func TestResumeLogAcked(t *testing.T) {
	r := newResumeState(&peer{}, 1<<10)
	defer r.stop()
	r.acked(7) // nothing kept yet
	r.start(5)
	r.enabled.Store(true)
	r.keep(4, []byte("before")) // not the next number: not kept
	for i, f := range []string{"five", "six", "seven"} {
		r.keep(uint32(5+i), []byte(f))
	}
	got, ok := r.from(6)
	require.True(t, ok)
	require.Equal(t, "sixseven", string(got))
	r.acked(6)
	_, ok = r.from(5)
	require.False(t, ok, "frame 5 was acknowledged and forgotten")
	r.acked(100)
	got, ok = r.from(8)
	require.True(t, ok)
	require.Empty(t, got)
	r.acked(200) // beyond, with nothing kept
	r.acked(3)   // behind
	r.keep(8, []byte("eight"))
	got, ok = r.from(8)
	require.True(t, ok)
	require.Equal(t, "eight", string(got))
}

// Until the server grants resume, a client keeps frames only up to its
// limit and then stops keeping them, rather than close: a server without
// resume never acknowledges.
func TestResumeLogNotGranted(t *testing.T) {
	r := newResumeState(&peer{}, 16)
	defer r.stop()
	r.start(1)
	for i := uint32(1); i <= 4; i++ {
		r.keep(i, []byte("12345678"))
	}
	require.False(t, r.on())
	_, ok := r.from(1)
	require.False(t, ok, "the log was dropped at its limit")
}
