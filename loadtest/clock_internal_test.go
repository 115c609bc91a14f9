package loadtest

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The frame clock gives every bot its frames at the render rate from one
// goroutine, deals the bots out to the frame's slots evenly, never runs a
// bot's frame after remove returned, and ends its goroutine with its last
// bot.
func TestFrameClock(t *testing.T) {
	c := newFrameClock(renderRate)
	const bots = 2 * clockSlots
	var mu sync.Mutex
	firsts := make([]time.Time, bots)
	counts := make([]int, bots)
	var removed atomic.Bool
	var afterRemove atomic.Int64
	clocked := make([]*clockBot, bots)
	for i := range bots {
		clocked[i] = c.add(func(now time.Time) {
			if removed.Load() {
				afterRemove.Add(1)
			}
			mu.Lock()
			if counts[i] == 0 {
				firsts[i] = now
			}
			counts[i]++
			mu.Unlock()
		})
	}
	const playFor = 500 * time.Millisecond
	time.Sleep(playFor)
	for _, b := range clocked {
		c.remove(b)
	}
	removed.Store(true)
	c.close() // returns: the goroutine ended with its last bot
	require.Zero(t, afterRemove.Load(), "a frame ran after remove returned")

	mu.Lock()
	defer mu.Unlock()
	want := int(playFor * renderRate / time.Second) // 30
	for i := range bots {
		// A slow machine's clock runs late: never more frames than due,
		// and, unless it stalls for most of the run, a fair share of them.
		require.LessOrEqual(t, counts[i], want+1, "bot %d: frames", i)
		require.GreaterOrEqual(t, counts[i], want/4, "bot %d: frames", i)
		require.False(t, firsts[i].IsZero(), "bot %d: no frame", i)
	}
	// The bots are dealt out to the slots in turn, so each slot, a
	// sixteenth of the frame apart, holds as many.
	perSlot := map[int]int{}
	for _, b := range clocked {
		perSlot[b.slot]++
	}
	require.Len(t, perSlot, clockSlots, "every slot holds bots")
	for slot, n := range perSlot {
		require.Equal(t, bots/clockSlots, n, "slot %d", slot)
	}

	// A bot added after the clock stopped starts it again.
	got := make(chan struct{}, 1)
	b := c.add(func(time.Time) {
		select {
		case got <- struct{}{}:
		default:
		}
	})
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("no frame from a restarted clock")
	}
	c.remove(b)
	c.close()
}

// A run's clocks take the bots in turn, each clock runs its own, and close
// waits for them all.
func TestFrameClocks(t *testing.T) {
	cs := &frameClocks{clocks: []*frameClock{newFrameClock(renderRate), newFrameClock(renderRate), newFrameClock(renderRate)}}
	var frames [6]atomic.Int64
	var bots [6]*clockBot
	for i := range bots {
		bots[i] = cs.add(func(time.Time) { frames[i].Add(1) })
	}
	for i, c := range cs.clocks {
		c.mu.Lock()
		n := c.n
		c.mu.Unlock()
		require.Equal(t, 2, n, "clock %d's bots", i)
	}
	require.Eventually(t, func() bool {
		for i := range frames {
			if frames[i].Load() == 0 {
				return false
			}
		}
		return true
	}, 5*time.Second, 5*time.Millisecond, "every bot's frames run")
	for _, b := range bots {
		cs.remove(b)
	}
	cs.close()
}

// A frame clock whose goroutine is held up for several frames (a load
// generator short of CPU) counts the bots' frames it could not run, and
// runs the others.
func TestFrameClockCountsSkippedFrames(t *testing.T) {
	c := newFrameClock(renderRate)
	const bots = 4
	var calls atomic.Int64
	clocked := make([]*clockBot, bots)
	for i := range bots {
		clocked[i] = c.add(func(time.Time) {
			if calls.Add(1) == 2*bots { // once, in the second frame
				time.Sleep(6 * time.Second / renderRate)
			}
		})
	}
	require.Eventually(t, func() bool { return calls.Load() > 4*bots }, 5*time.Second, time.Millisecond)
	for _, b := range clocked {
		c.remove(b)
	}
	c.close()
	// Held up 6 frames: the wake-up after runs one frame of each bot's,
	// and about 5 of each are lost; a slow machine loses more.
	require.GreaterOrEqual(t, c.skipped.Load(), uint64(3*bots), "frames lost to the stall")
}
