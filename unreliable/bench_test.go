package unreliable

import "testing"

func BenchmarkAppendFragment(b *testing.B) {
	data := snapshotData(1, 3000) // 3 fragments
	count, err := FragmentCount(len(data), MaxDatagram)
	if err != nil || count != 3 {
		b.Fatal(count, err)
	}
	buf := make([]byte, 0, MaxDatagram)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	var seq uint16
	for b.Loop() {
		for i := range count {
			buf = AppendFragment(buf[:0], seq, 1, data, i, count, MaxDatagram)
			seq++
		}
	}
}

func BenchmarkReassemble(b *testing.B) {
	data := snapshotData(1, 3000) // 3 fragments
	frags := fragments(b, 1, data, MaxDatagram)
	var r Reassembler
	tick := uint32(1)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		for _, f := range frags {
			f.h.Tick = tick
			if _, snap, ok := r.Add(f.h, f.data, t0); ok && len(snap) != len(data) {
				b.Fatal(len(snap))
			}
		}
		tick++
	}
	if r.Dropped != 0 || r.Stale != 0 {
		b.Fatal(r.Dropped, r.Stale)
	}
}
