package loadtest

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// clockSlots is how many slots a frame's period is cut into: the bots
// are dealt out to them in turn, so that their frames (and the inputs
// sent from them) are spread over the period as independent players'
// are, not sent in bursts.
const clockSlots = 16

// frameClock runs the bots' frames from one goroutine that wakes once a
// slot, renderRate×clockSlots times a second, and runs the frames of the
// bots in that slot. A ticker per bot would wake 500 bots' goroutines
// 30 000 times a second, most of a load-test machine's core (issue 10:
// 500 bots in one process must not starve).
//
// The goroutine is the clock's: it starts with the first bot and ends when
// none is left, and close waits for it.
type frameClock struct {
	period time.Duration // of a slot

	mu      sync.Mutex
	slots   [clockSlots][]*clockBot
	next    int // the slot the next bot is dealt
	n       int
	running bool
	wg      sync.WaitGroup
	// skipped counts the bots' frames a late wake-up could not run: the
	// load generator's machine was too slow for its bots.
	skipped atomic.Uint64
}

// clockBot is one bot on a frameClock.
type clockBot struct {
	frame func(now time.Time)
	slot  int
	clock *frameClock
}

// frameClocks are a run's clocks, one per processor (GOMAXPROCS), so
// that a run of thousands of bots on a machine of many cores does not
// leave every frame to one goroutine; each bot goes on the next in turn.
type frameClocks struct {
	clocks []*frameClock
	next   atomic.Uint32
}

func newFrameClocks(framesPerSecond int) *frameClocks {
	cs := &frameClocks{clocks: make([]*frameClock, max(runtime.GOMAXPROCS(0), 1))}
	for i := range cs.clocks {
		cs.clocks[i] = newFrameClock(framesPerSecond)
	}
	return cs
}

// add puts frame on the next clock (frameClock.add).
func (cs *frameClocks) add(frame func(now time.Time)) *clockBot {
	return cs.clocks[int(cs.next.Add(1)-1)%len(cs.clocks)].add(frame)
}

// remove takes b off its clock (frameClock.remove).
func (cs *frameClocks) remove(b *clockBot) { b.clock.remove(b) }

// skipped counts the frames the clocks could not run in time
// (frameClock.skipped), over all of them.
func (cs *frameClocks) skipped() uint64 {
	if cs == nil {
		return 0
	}
	var n uint64
	for _, c := range cs.clocks {
		n += c.skipped.Load()
	}
	return n
}

// close waits for every clock's goroutine (frameClock.close).
func (cs *frameClocks) close() {
	for _, c := range cs.clocks {
		c.close()
	}
}

func newFrameClock(framesPerSecond int) *frameClock {
	return &frameClock{period: time.Second / time.Duration(framesPerSecond*clockSlots)}
}

// add puts frame on the clock: it runs once a frame period, on the clock's
// goroutine, until remove.
func (c *frameClock) add(frame func(now time.Time)) *clockBot {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := &clockBot{frame: frame, slot: c.next, clock: c}
	c.next = (c.next + 1) % clockSlots
	c.slots[b.slot] = append(c.slots[b.slot], b)
	c.n++
	if !c.running {
		c.running = true
		c.wg.Add(1)
		go c.run()
	}
	return b
}

// remove takes b off the clock; once it returns, b's frame is not running
// and never runs again.
func (c *frameClock) remove(b *clockBot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.slots[b.slot]
	for i, x := range s {
		if x == b {
			s[i] = s[len(s)-1]
			s[len(s)-1] = nil
			c.slots[b.slot] = s[:len(s)-1]
			c.n--
			return
		}
	}
}

// close waits for the clock's goroutine to end, once every bot was
// removed.
func (c *frameClock) close() { c.wg.Wait() }

func (c *frameClock) run() {
	defer c.wg.Done()
	start := time.Now() // before the ticker: tick k comes after slot k's start
	tk := time.NewTicker(c.period)
	defer tk.Stop()
	done := int64(0) // slots run since start
	for {
		<-tk.C
		now := time.Now()
		// A ticker drops the ticks its goroutine was too late for: the
		// slots due are counted from the clock, so that a late wake-up
		// runs them all (each at most once: a bot is never given two
		// frames at once); the frames of a wake-up later than a whole
		// frame are lost, and counted.
		due := int64(now.Sub(start) / c.period)
		c.mu.Lock()
		if c.n == 0 {
			c.running = false
			c.mu.Unlock()
			return
		}
		if late := due - done - clockSlots; late > 0 {
			lost := late / clockSlots * int64(c.n)
			for i := done; i < done+late%clockSlots; i++ {
				lost += int64(len(c.slots[i%clockSlots]))
			}
			c.skipped.Add(uint64(lost))
			done = due - clockSlots
		}
		for ; done < due; done++ {
			for _, b := range c.slots[done%clockSlots] {
				b.frame(now)
			}
		}
		c.mu.Unlock()
	}
}
