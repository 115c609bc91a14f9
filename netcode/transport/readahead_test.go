package transport

import (
	"io"
	"testing"
	"time"
)

// A byte read ahead comes first, then the stream's own; an error read
// ahead comes once; and Notify starts nothing while either waits.
func TestReadAhead(t *testing.T) {
	var a ReadAhead
	if _, ok, _ := a.Take(make([]byte, 4)); ok {
		t.Fatal("Take before any read ahead: ok")
	}
	r, w := io.Pipe()
	done := make(chan struct{})
	if !a.Notify(r, func() { close(done) }) {
		t.Fatal("Notify on an idle stream: false")
	}
	select {
	case <-done:
		t.Fatal("notified before a byte came")
	case <-time.After(20 * time.Millisecond):
	}
	go func() { _, _ = w.Write([]byte("xyz")) }()
	<-done
	if a.Notify(r, func() { t.Error("a second notifier was called") }) {
		t.Fatal("Notify with a byte read ahead: true")
	}
	if n, ok, err := a.Take(nil); !ok || n != 0 || err != nil {
		t.Fatalf("Take(nil): %d, %v, %v; want 0, true, nil (the byte kept)", n, ok, err)
	}
	b := make([]byte, 4)
	if n, ok, err := a.Take(b); !ok || n != 1 || b[0] != 'x' || err != nil {
		t.Fatalf("Take: %d %q, %v, %v; want the byte x", n, b[:n], ok, err)
	}
	if _, ok, _ := a.Take(b); ok {
		t.Fatal("Take after the byte: ok")
	}
	if n, _ := r.Read(b); string(b[:n]) != "yz" {
		t.Fatalf("the stream's next read: %q, want yz", b[:n])
	}

	done = make(chan struct{})
	if !a.Notify(r, func() { close(done) }) {
		t.Fatal("Notify on an idle stream again: false")
	}
	_ = w.CloseWithError(io.ErrUnexpectedEOF)
	<-done
	if n, ok, err := a.Take(b); !ok || n != 0 || err != io.ErrUnexpectedEOF {
		t.Fatalf("Take after the stream ended: %d, %v, %v; want its error", n, ok, err)
	}
	if _, ok, _ := a.Take(b); ok {
		t.Fatal("the error came twice")
	}
}
