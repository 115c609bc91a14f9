package kcp

import (
	"sync"
	"time"
)

// timers are the sessions of one socket whose KCP core needs a flush
// later (segments in flight, acknowledgements or a window to announce),
// ordered by when: a min-heap on mono. One goroutine drives them (run); any
// goroutine may add. A session with nothing in flight is not in the heap
// and costs the driver nothing.
//
// The driver sleeps on one time.Timer armed for the earliest session.
// add re-arms it only when it brings that time forward, so adding from a
// Write or Read wakes no goroutine.
type timers struct {
	mu    sync.Mutex
	heap  []*Session
	timer *time.Timer
	armed bool  // the timer will fire, at at
	at    int64 // when it will (mono)
}

func newTimers() *timers {
	t := &timers{timer: time.NewTimer(time.Hour)}
	t.timer.Stop()
	return t
}

// add asks for a flush of s at due (mono), or keeps an earlier request.
func (t *timers) add(s *Session, due int64) {
	t.mu.Lock()
	switch {
	case s.ti < 0:
		s.due = due
		s.ti = len(t.heap)
		t.heap = append(t.heap, s)
		t.up(s.ti)
	case due < s.due:
		s.due = due
		t.up(s.ti)
	default:
		t.mu.Unlock()
		return
	}
	t.arm()
	t.mu.Unlock()
}

// arm makes the timer fire at the earliest due time, unless it already
// fires before then (t.mu held).
func (t *timers) arm() {
	if len(t.heap) == 0 {
		return
	}
	due := t.heap[0].due
	if t.armed && due >= t.at {
		return
	}
	t.timer.Reset(max(time.Duration(due-mono()), 0))
	t.armed, t.at = true, due
}

// popDue appends the sessions due by now to list, removing them.
func (t *timers) popDue(now int64, list []*Session) []*Session {
	t.mu.Lock()
	t.armed = false
	for len(t.heap) > 0 && t.heap[0].due <= now {
		list = append(list, t.pop())
	}
	t.arm()
	t.mu.Unlock()
	return list
}

// run drives the timers until done is closed: each due session gets its
// flush (Session.update), with its packets in out (nil: sent one by one), and tick runs
// every tickInterval for keepalives and timeouts. out is flushed after
// each wake.
func (t *timers) run(done <-chan struct{}, out *outbox, tick func(time.Time, *outbox)) {
	ticker := time.NewTicker(tickInterval)
	defer ticker.Stop()
	defer t.timer.Stop()
	var list []*Session
	for {
		select {
		case <-done:
			return
		case now := <-ticker.C:
			tick(now, out)
		case <-t.timer.C:
			list = t.popDue(mono(), list[:0])
			for _, s := range list {
				if due, again := s.update(out); again {
					t.add(s, due)
				}
			}
			clear(list)
		}
		out.flush()
	}
}

// The heap proper, on s.due; s.ti is each session's index, -1 outside.

func (t *timers) less(i, j int) bool { return t.heap[i].due < t.heap[j].due }

func (t *timers) swap(i, j int) {
	h := t.heap
	h[i], h[j] = h[j], h[i]
	h[i].ti, h[j].ti = i, j
}

func (t *timers) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !t.less(i, p) {
			return
		}
		t.swap(i, p)
		i = p
	}
}

func (t *timers) down(i int) {
	n := len(t.heap)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && t.less(r, l) {
			m = r
		}
		if !t.less(m, i) {
			return
		}
		t.swap(i, m)
		i = m
	}
}

func (t *timers) pop() *Session {
	n := len(t.heap) - 1
	t.swap(0, n)
	s := t.heap[n]
	t.heap[n] = nil
	t.heap = t.heap[:n]
	t.down(0)
	s.ti = -1
	return s
}
