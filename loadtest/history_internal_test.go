package loadtest

import (
	"encoding/binary"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func counter(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// checkHistory emits sent counters, feeds the echoes to a check in the
// given order and finishes it.
func checkHistory(sent int, echoes []uint64, tail bool) historyResult {
	h := newHistoryCheck()
	for range sent {
		h.emit()
	}
	for _, n := range echoes {
		h.echo(counter(n))
	}
	return h.finish(tail)
}

func TestHistoryCheck(t *testing.T) {
	cases := []struct {
		name   string
		sent   int
		echoes []uint64
		tail   bool
		want   historyResult
	}{
		{"in order", 5, []uint64{1, 2, 3, 4, 5}, true, historyResult{Checked: 5}},
		{"nothing sent", 0, nil, true, historyResult{}},
		{"a loss", 5, []uint64{1, 2, 4, 5}, true, historyResult{Checked: 4, Lost: 1}},
		{"losses in a row", 6, []uint64{1, 5, 6}, true, historyResult{Checked: 3, Lost: 3}},
		{"a duplicate", 4, []uint64{1, 2, 2, 3, 4}, true, historyResult{Checked: 5, Duplicated: 1}},
		{"a duplicate of an old one", 4, []uint64{1, 2, 3, 1, 4}, true, historyResult{Checked: 5, Duplicated: 1}},
		{"a reorder", 4, []uint64{1, 3, 2, 4}, true, historyResult{Checked: 4, Reordered: 1}},
		{"a reorder then its duplicate", 4, []uint64{1, 3, 2, 2, 4}, true, historyResult{Checked: 5, Reordered: 1, Duplicated: 1}},
		{"never emitted", 2, []uint64{1, 2, 3, 0}, true, historyResult{Checked: 4, Duplicated: 2}},
		{"the tail lost", 5, []uint64{1, 2, 3}, true, historyResult{Checked: 3, Lost: 2}},
		{"the tail not waited for", 5, []uint64{1, 2, 3}, false, historyResult{Checked: 3}},
		{"a gap counts without the tail", 5, []uint64{1, 3}, false, historyResult{Checked: 2, Lost: 1}},
		{"all of it", 8, []uint64{1, 1, 3, 2, 5, 7}, true, historyResult{Checked: 6, Duplicated: 1, Reordered: 1, Lost: 3}},
	}
	for _, tc := range cases {
		got := checkHistory(tc.sent, tc.echoes, tc.tail)
		require.Equal(t, tc.want, got, tc.name)
		require.Equal(t, tc.want.Lost+tc.want.Duplicated+tc.want.Reordered, got.violations(), tc.name)
	}
}

func TestHistoryCheckEdges(t *testing.T) {
	h := newHistoryCheck()
	n, p := h.emit()
	require.Equal(t, uint64(1), n)
	require.Equal(t, counter(1), p)
	require.False(t, h.caughtUp())
	h.echo(p)
	require.True(t, h.caughtUp())

	n, _ = h.emit()
	h.unemit(n) // it was not sent: the next emit reuses the counter
	n, _ = h.emit()
	require.Equal(t, uint64(2), n)
	h.echo([]byte{1, 2, 3}) // not a counter
	require.Equal(t, historyResult{Checked: 2, Duplicated: 1}, h.finish(false))

	h.echo(counter(2))
	require.Equal(t, historyResult{Checked: 2, Duplicated: 1}, h.finish(true), "after the end nothing counts, and finish gives the same result")

	var total historyResult
	total.add(historyResult{Checked: 3, Lost: 1})
	total.add(historyResult{Checked: 2, Duplicated: 1, Reordered: 1})
	require.Equal(t, historyResult{Checked: 5, Lost: 1, Duplicated: 1, Reordered: 1}, total)
}

// The emitter and the echoes run on different goroutines; an echo that
// comes back before Emit returns still finds its counter emitted.
func TestHistoryCheckConcurrent(t *testing.T) {
	h := newHistoryCheck()
	echoes := make(chan []byte, 16)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for p := range echoes {
			h.echo(p)
		}
	}()
	for range 1000 {
		_, p := h.emit()
		echoes <- p
	}
	close(echoes)
	wg.Wait()
	require.True(t, h.caughtUp())
	require.Equal(t, historyResult{Checked: 1000}, h.finish(true))
}
