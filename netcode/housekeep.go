package netcode

import "time"

// Housekeeping: the server's one walk a second over its connections. It
// finds resumable connections gone silent (watchSilence) and sends their
// new tickets when due (refreshTicket), closes connections stalled past a
// deadline (overdue) and lets idle connections' buffers go (trim), in
// place of timers and goroutine starts per connection.

// trimAfter is how long a connection's structure must go unused before
// trim releases its buffers: long enough that a connection in use, even a
// slow one, keeps them and never allocates them again every tick; short
// enough that the many idle sessions of a game server (in a lobby, in a
// menu) hold only what they need.
const trimAfter = 5 * time.Second

// housekeep starts the server's housekeeping walk, once: Serve starts it,
// as does Adopt, since either brings connections. It ends with s.ctx, and
// Close waits for it (s.wg).
func (s *Server) housekeep() {
	s.connsMu.Lock() // as serving connections: Close waits for it, or it never starts
	defer s.connsMu.Unlock()
	if !s.housekeeping && !s.closing.Load() {
		s.housekeeping = true
		s.wg.Add(1)
		go s.housekeepLoop()
	}
}

// housekeepLoop runs each second, until the server stops: watchSilence
// and refreshTicket for every connection whose resume is on (granted or
// adopted), and overdue and trim for every connection.
func (s *Server) housekeepLoop() {
	defer s.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var list []*Conn
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		s.connsMu.Lock()
		for _, c := range s.conns {
			list = append(list, c)
		}
		s.connsMu.Unlock()
		now := time.Now()
		for i, c := range list {
			if c.sres != nil && c.res.on() {
				c.watchSilence()
				c.refreshTicket(now)
			}
			c.overdue(now)
			c.trim(now)
			c.budget.trim(now)
			list[i] = nil
		}
		list = list[:0]
	}
}

// trim releases the buffers the connection's structures keep for reuse
// once each went unused for trimAfter and holds nothing that is still
// needed: the datagram acks' window and the sender's scratch, the frames
// held for copying, the peer's copies held ahead, the replay log once the peer acknowledged all of it,
// and the outbox's buffers. Each is allocated again at its next use. It
// takes each structure's own lock, one at a time, and any goroutine may
// call it: the server's housekeeping, the client's watch loop.
func (p *peer) trim(now time.Time) {
	p.dq.trim(now)
	p.copies.trim(now)
	p.seq.trim(now)
	p.res.trim(now)
	p.out.trim(now)
}

// idleMark tells a structure's trim whether the structure went unused for
// a while, with no clock read where it is used: each use sets used, and
// each trim clears it, noting when it first found it clear. Both hold the
// structure's lock. A trim only consults it when the structure holds
// nothing it still needs, which each use also prevents until it is done,
// so a mark seen clear means nothing was used since.
type idleMark struct {
	used  bool
	since time.Time // when a trim first found used clear
}

// idle reports whether the structure went unused for at least d before
// now, as far as the trims' spacing tells.
func (m *idleMark) idle(now time.Time, d time.Duration) bool {
	if m.used || m.since.IsZero() {
		m.used, m.since = false, now
		return false
	}
	return now.Sub(m.since) >= d
}
