package netcode

import "sync"

// worker is the goroutine of one of a connection's queues (the outbox's
// writer, the datagram sender, the event datagrams' handler) that runs
// only while the queue has work: kick wakes it if it runs, or starts it;
// the goroutine ends itself, clearing running, after linger without work.
// The queue's own mutex guards running, so that a kick and the goroutine's
// decision to end never miss each other.
type worker struct {
	running bool
	// wake is made as the goroutine starts and let go as it ends (end):
	// an idle connection holds no channel for each of its queues.
	wake chan struct{}
	loop func() // the goroutine's body, bound once
}

func newWorker(loop func()) worker { return worker{loop: loop} }

// end is the goroutine's decision to end, with the queue's mutex held.
func (w *worker) end() {
	w.running, w.wake = false, nil
}

// kick is called with mu, the queue's mutex, held, and unlocks it. It wakes
// the goroutine if it runs; otherwise, when work says there is something
// for it to do, it starts the loop with spawn. It reports false when spawn
// refused (the connection is finishing).
func (w *worker) kick(mu *sync.Mutex, work bool, spawn func(func()) bool) bool {
	if w.running {
		wake := w.wake // read under mu: end lets it go
		mu.Unlock()
		select {
		case wake <- struct{}{}:
		default:
		}
		return true
	}
	if !work {
		mu.Unlock()
		return true
	}
	w.running = true
	if w.wake == nil {
		w.wake = make(chan struct{}, 1)
	}
	mu.Unlock()
	if spawn(w.loop) {
		return true
	}
	mu.Lock()
	w.end()
	mu.Unlock()
	return false
}
