package reliable

import (
	"bytes"
	"testing"
)

func BenchmarkAppendEvent(b *testing.B) {
	payload := bytes.Repeat([]byte{0x5a}, 64)
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	b.SetBytes(int64(HeaderLen + 1 + len("move") + len(payload)))
	for b.Loop() {
		var err error
		buf, err = AppendEvent(buf[:0], "move", payload)
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReaderNext(b *testing.B) {
	payload := bytes.Repeat([]byte{0x5a}, 64)
	var stream []byte
	for range 64 {
		var err error
		if stream, err = AppendEvent(stream, "move", payload); err != nil {
			b.Fatal(err)
		}
	}
	r := NewReader(&loopReader{b: stream}, 0)
	b.ReportAllocs()
	b.SetBytes(int64(len(stream) / 64))
	for b.Loop() {
		f, err := r.Next()
		if err != nil || len(f.Payload) != len(payload) {
			b.Fatal(f, err)
		}
	}
}
