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
