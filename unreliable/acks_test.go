package unreliable

import (
	"math/rand/v2"
	"testing"
	"time"
)

// Unacknowledged datagrams count as lost once older than LossAfter, oldest
// first, and acknowledged ones never do, across sequence wrap-around and
// window overflow.
func TestSentAgesOutLoss(t *testing.T) {
	var s Sent
	t0 := time.Unix(1000, 0)
	for i := 0; i < 10; i++ {
		s.Next(t0.Add(time.Duration(i)*100*time.Millisecond), 0, false)
	}
	// Acked at 1.05 s: seq 10 (sent at 0.9 s) with bits for 9..5; 1..4
	// are missing, and 1 (sent at 0) is over a second old.
	s.Ack(10, 0b11111, t0.Add(1050*time.Millisecond), nil)
	acked, lost := s.Counts()
	if acked != 6 || lost != 1 || s.Pending() != 3 {
		t.Fatalf("at 1.05 s: acked %d, lost %d, pending %d; want 6, 1 and 3", acked, lost, s.Pending())
	}
	s.Ack(10, 0b11111, t0.Add(1350*time.Millisecond), nil) // 2..4 age out, nothing twice
	if acked, lost = s.Counts(); acked != 6 || lost != 4 || s.Pending() != 0 {
		t.Fatalf("at 1.35 s: acked %d, lost %d; want 6 and 4", acked, lost)
	}

	// Sent after the newest datagram acknowledged, a datagram is not lost
	// by age: the peer (an idle one) had no datagram since to ack it in.
	var q Sent
	for i := 0; i < 3; i++ {
		q.Next(t0.Add(time.Duration(i)*100*time.Millisecond), 0, false)
	}
	q.Ack(1, 0, t0.Add(1500*time.Millisecond), nil)
	if acked, lost := q.Counts(); acked != 1 || lost != 0 || q.Pending() != 2 {
		t.Fatalf("after the newest ack: acked %d, lost %d, pending %d; want 1, 0 and 2", acked, lost, q.Pending())
	}
	q.Ack(3, 0b1, t0.Add(10*time.Second), nil) // 10 s on, both arrived
	if acked, lost := q.Counts(); acked != 3 || lost != 0 {
		t.Fatalf("acked late: acked %d, lost %d; want 3 and 0", acked, lost)
	}

	// A long run, each acked at once: nothing lost across the wrap.
	var w Sent
	now := t0
	for i := 0; i < 70000; i++ {
		now = now.Add(time.Millisecond)
		seq := w.Next(now, 0, false)
		w.Ack(seq, 0, now, nil)
	}
	if acked, lost := w.Counts(); acked != 70000 || lost != 0 {
		t.Fatalf("wrap: acked %d, lost %d; want 70000 and 0", acked, lost)
	}
	// The window overflows unacknowledged: Next counts the overwritten,
	// the age-out the rest, each once.
	for i := 0; i < sentWindow+44; i++ {
		w.Next(now, 0, false)
	}
	w.Ack(w.next-1, 0, now.Add(2*time.Second), nil)
	if _, lost := w.Counts(); lost != sentWindow+44-1 {
		t.Fatalf("overflow: lost %d; want %d", lost, sentWindow+44-1)
	}
}

// BenchmarkSentAck is one received datagram's ack bookkeeping, in the
// steady state of a 30 Hz stream each way.
func BenchmarkSentAck(b *testing.B) {
	var s Sent
	now := time.Unix(1000, 0)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		now = now.Add(33 * time.Millisecond)
		seq := s.Next(now, 0, false)
		s.Ack(seq, ^uint32(0), now, nil)
	}
}

// Acks that repeat, overlap, arrive out of order or skip ahead count each
// acknowledged datagram exactly once, as a model that checks every bit of
// every ack does.
func TestSentAckCountsEachOnce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 200; round++ {
		var s Sent
		now := time.Unix(1000, 0)
		n := 1 + rng.IntN(200)
		for i := 0; i < n; i++ {
			s.Next(now, 0, false)
		}
		acked := map[uint16]bool{}
		for k := 0; k < 50; k++ {
			ack := uint16(1 + rng.IntN(n))
			bits := rng.Uint32()
			if rng.IntN(3) == 0 {
				bits = ^uint32(0)
			}
			s.Ack(ack, bits, now, nil)
			acked[ack] = true
			for i := uint16(0); i < 32; i++ {
				if bits&(1<<i) != 0 && ack-1-i >= 1 && int(ack-1-i) <= n {
					acked[ack-1-i] = true
				}
			}
		}
		if got, _ := s.Counts(); got != uint64(len(acked)) {
			t.Fatalf("round %d: %d acknowledged; the model says %d", round, got, len(acked))
		}
	}
}

// Trim lets the window go only once nothing was sent for the idle time;
// it settles what was clearly lost, forgets the rest, keeps the estimates,
// ignores acks for what it forgot, and the next send starts a window that
// acks and loses as before.
func TestSentTrim(t *testing.T) {
	var s Sent
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	for i := 0; i < 10; i++ { // seqs 1..10 at 0..900 ms, tagged with their seq
		s.Next(at(i*100), uint64(i+1), true)
	}
	var tags []uint64
	onTag := func(tag uint64) { tags = append(tags, tag) }
	s.Ack(6, 0b111, at(950), onTag) // 6..3 arrived; 1 and 2 not yet a second old
	if acked, lost := s.Counts(); acked != 4 || lost != 0 || s.Pending() != 6 {
		t.Fatalf("before the trim: acked %d, lost %d, pending %d; want 4, 0 and 6", acked, lost, s.Pending())
	}
	rtt, loss := s.RTT(), s.Loss()

	if s.Trim(at(5899), 5*time.Second) || s.ring == nil {
		t.Fatal("trimmed 4.999 s after the last send, with 5 s to wait")
	}
	if !s.Trim(at(5900), 5*time.Second) || s.ring != nil {
		t.Fatal("not trimmed 5 s after the last send")
	}
	// 1 and 2 were lost (sent before the newest ack, and old); 7..10 are
	// forgotten.
	if acked, lost := s.Counts(); acked != 4 || lost != 2 || s.Pending() != 0 {
		t.Fatalf("after the trim: acked %d, lost %d, pending %d; want 4, 2 and 0", acked, lost, s.Pending())
	}
	if s.RTT() != rtt || s.Loss() <= loss || !s.LastLoss().Equal(at(5900)) {
		t.Fatalf("after the trim: rtt %v (was %v), loss %v (was %v), last loss %v", s.RTT(), rtt, s.Loss(), loss, s.LastLoss())
	}
	rtt, loss = s.RTT(), s.Loss()
	if !s.Trim(at(6000), 5*time.Second) {
		t.Fatal("a released window reported held")
	}

	// Late and stale acks for what was forgotten: no panic, nothing counted.
	tags = tags[:0]
	s.Ack(10, 0b111, at(6100), onTag)
	s.Ack(3, ^uint32(0), at(6200), onTag)
	if acked, lost := s.Counts(); acked != 4 || lost != 2 || len(tags) != 0 || s.RTT() != rtt || s.Loss() != loss {
		t.Fatalf("after stale acks: acked %d, lost %d, tags %v, rtt %v; want 4, 2, none, %v", acked, lost, tags, s.RTT(), rtt)
	}

	// Sending again: a new window, whose acks and losses count.
	if seq := s.Next(at(7000), 99, true); seq != 11 || s.ring == nil {
		t.Fatalf("the first send after the trim: seq %d, ring %v; want 11 and a window", seq, s.ring != nil)
	}
	s.Ack(11, 0b1111, at(7050), onTag) // bits for the forgotten 10..7: ignored
	if acked, _ := s.Counts(); acked != 5 || len(tags) != 1 || tags[0] != 99 {
		t.Fatalf("after the new send's ack: acked %d, tags %v; want 5 and [99]", acked, tags)
	}
	if want := rtt + (50*time.Millisecond-rtt)/8; s.RTT() != want {
		t.Fatalf("rtt %v after a 50 ms sample; want %v", s.RTT(), want)
	}
	s.Next(at(7100), 0, false) // 12: lost
	s.Next(at(7200), 0, false) // 13
	s.Ack(13, 0, at(8500), onTag)
	if acked, lost := s.Counts(); acked != 6 || lost != 3 || s.Pending() != 0 {
		t.Fatalf("after a loss in the new window: acked %d, lost %d, pending %d; want 6, 3 and 0", acked, lost, s.Pending())
	}
	if s.Trim(at(8500), 5*time.Second) {
		t.Fatal("trimmed 1.3 s after a send")
	}
}

// Trim across the sequence wrap and a window overflowed by sends: the
// pending count stays exact, and sending on works.
func TestSentTrimWrap(t *testing.T) {
	var s Sent
	now := time.Unix(1000, 0)
	for i := 0; i < 65535+300; i++ { // wraps; the first 300 after the wrap overflow the window
		s.Next(now, 0, false)
	}
	s.Ack(s.next-1, ^uint32(0), now, nil) // the newest 33 arrived
	if !s.Trim(now.Add(10*time.Second), 5*time.Second) {
		t.Fatal("not trimmed")
	}
	if s.Pending() != 0 {
		t.Fatalf("pending %d after the trim; want 0", s.Pending())
	}
	seq := s.Next(now.Add(11*time.Second), 0, false)
	s.Ack(seq, 0, now.Add(11*time.Second), nil)
	if acked, _ := s.Counts(); acked != 34 || s.Pending() != 0 {
		t.Fatalf("acked %d, pending %d; want 34 and 0", acked, s.Pending())
	}
}

// Ack and Next stay free of allocations once the window exists.
func TestSentAllocs(t *testing.T) {
	var s Sent
	now := time.Unix(1000, 0)
	s.Next(now, 0, false)
	if n := testing.AllocsPerRun(1000, func() {
		seq := s.Next(now, 1, true)
		s.Ack(seq, ^uint32(0), now, nil)
		s.Trim(now, 5*time.Second)
	}); n != 0 {
		t.Fatalf("%v allocs per send and ack", n)
	}
}
