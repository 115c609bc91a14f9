package loadtest

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The steal share comes from /proc/stat's cpu line: the eighth time over
// the sum of the first eight.
func TestStealPercent(t *testing.T) {
	a := parseCPUTimes([]byte("cpu  100 0 50 800 10 0 10 30 0 0\ncpu0 1 2 3\n"))
	require.Equal(t, cpuTimes{total: 1000, steal: 30}, a)
	b := parseCPUTimes([]byte("cpu  300 0 150 1100 10 0 10 430 0 0\n"))
	require.Equal(t, cpuTimes{total: 2000, steal: 430}, b)
	require.Equal(t, 40.0, stealPercent(a, b))
	require.Zero(t, stealPercent(b, a), "times that went back")
	require.Equal(t, cpuTimes{}, parseCPUTimes([]byte("intr 1 2 3\n")))
	require.Equal(t, cpuTimes{}, parseCPUTimes([]byte("cpu 1 x 3\n")))
	// This machine's, whatever they are, are read.
	now := readCPUTimes()
	require.GreaterOrEqual(t, now.total, now.steal)
}
