package netcode

import "time"

// SetClockIdlePeriod shortens the idle clock's PING period for a test,
// whose cleanup (after its clients and servers closed) puts it back.
func SetClockIdlePeriod(d time.Duration) (restore func()) {
	old := clockIdlePeriod
	clockIdlePeriod = d
	return func() { clockIdlePeriod = old }
}

// ReadLoopStarts is how many parked read loops started again, in every
// server of the process.
func ReadLoopStarts() uint64 { return readLoopStarts.Load() }

// WriterRunning reports whether c's writer goroutine runs.
func WriterRunning(c *Conn) bool {
	c.out.mu.Lock()
	defer c.out.mu.Unlock()
	return c.out.writer.running
}
