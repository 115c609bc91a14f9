package netcode

import (
	"slices"
	"sync"
	"time"
)

// warmLinger is how long a warm goroutine waits for its next run before
// it ends.
const warmLinger = 2 * time.Second

// warmPool runs short jobs, a parked connection's read loop going on when
// its stream has bytes again (Conn.readMore), on goroutines kept for a
// while after a job. A fresh goroutine starts on a small stack and a read
// loop grows it twice, copying it each time (reading the stream, then
// sealing the reply): a tenth of a busy KCP server's CPU went there. A
// kept goroutine starts the next job on the stack the last one grew.
//
// The pool holds only as many goroutines as jobs ran at once lately; each
// ends after warmLinger without a job, so an idle server keeps none.
// The Server owns the pool; close ends the waiting goroutines, and a
// running one ends after its job.
type warmPool struct {
	linger time.Duration // zero means warmLinger

	mu     sync.Mutex
	idle   []*warmG // waiting for a job, the most recently used last
	closed bool
	wg     sync.WaitGroup
}

// warmG is one of the pool's goroutines, as the pool hands it a job.
type warmG struct {
	job chan func() // one job at a time; closed by close
}

// run runs job on a waiting goroutine, or on a new one.
func (p *warmPool) run(job func()) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		g := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		g.job <- job // cannot block: g waits, and nobody else sends to it
		return
	}
	if p.closed {
		p.mu.Unlock()
		go job() // the server is closing: the job ends its connection
		return
	}
	p.wg.Add(1)
	p.mu.Unlock()
	go p.loop(&warmG{job: make(chan func(), 1)}, job)
}

// loop is a warm goroutine: it runs job, then waits for the next one for
// up to warmLinger.
func (p *warmPool) loop(g *warmG, job func()) {
	defer p.wg.Done()
	wait := p.linger
	if wait <= 0 {
		wait = warmLinger
	}
	linger := time.NewTimer(wait)
	for {
		job()
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return
		}
		p.idle = append(p.idle, g)
		p.mu.Unlock()
		linger.Reset(wait)
		select {
		case job = <-g.job:
			if job == nil {
				return // closed
			}
			continue
		case <-linger.C:
		}
		p.mu.Lock()
		if i := slices.Index(p.idle, g); i >= 0 {
			p.idle = slices.Delete(p.idle, i, i+1)
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		// run took g just as the wait ended: its job is on the way.
		if job = <-g.job; job == nil {
			return
		}
	}
}

// close ends the waiting goroutines and waits for every goroutine of the
// pool, those still running a job too. Jobs run after it get a goroutine
// of their own. It is idempotent.
func (p *warmPool) close() {
	p.mu.Lock()
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, g := range idle {
		close(g.job)
	}
	p.wg.Wait()
}
