package netcode

import (
	"bytes"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// goid is the running goroutine's number, from its stack's header.
func goid() int {
	var buf [64]byte
	n := runtime.Stack(buf[:], false)
	f := bytes.Fields(buf[:n])
	id, _ := strconv.Atoi(string(f[1]))
	return id
}

// deep uses about n KiB of stack, as a read loop that seals its reply does.
//
//go:noinline
func deep(n int) byte {
	var pad [1024]byte
	pad[n%len(pad)] = byte(n)
	if n == 0 {
		return pad[0]
	}
	return deep(n-1) + pad[n%len(pad)]
}

// A job after another runs on the goroutine the last one ran on; jobs at
// once get goroutines of their own; a goroutine without a job for the
// linger ends; close ends the waiting ones and waits for the running ones.
func TestWarmPoolReusesAndEnds(t *testing.T) {
	p := &warmPool{linger: 100 * time.Millisecond}
	ids := make(chan int, 16)
	p.run(func() { ids <- goid() })
	first := <-ids
	require.Eventually(t, func() bool { p.mu.Lock(); defer p.mu.Unlock(); return len(p.idle) == 1 }, time.Second, time.Millisecond)
	p.run(func() { ids <- goid() })
	require.Equal(t, first, <-ids, "the next job runs on the warm goroutine")

	// Two jobs at once: two goroutines.
	release := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	for range 2 {
		p.run(func() { ids <- goid(); wg.Done(); <-release })
	}
	wg.Wait()
	a, b := <-ids, <-ids
	require.NotEqual(t, a, b, "jobs at once do not wait for each other")
	close(release)
	require.Eventually(t, func() bool { p.mu.Lock(); defer p.mu.Unlock(); return len(p.idle) == 2 }, time.Second, time.Millisecond)

	// Without jobs, they end after the linger.
	require.Eventually(t, func() bool { p.mu.Lock(); defer p.mu.Unlock(); return len(p.idle) == 0 }, 2*time.Second, 5*time.Millisecond, "idle goroutines end")

	// close: the running job finishes and its goroutine ends; the waiting
	// one ends at once; a job after close still runs.
	running := make(chan struct{})
	p.run(func() {}) // leaves one waiting
	require.Eventually(t, func() bool { p.mu.Lock(); defer p.mu.Unlock(); return len(p.idle) == 1 }, time.Second, time.Millisecond)
	p.run(func() { <-running })                         // takes the waiting one
	p.run(func() { time.Sleep(20 * time.Millisecond) }) // a new one
	done := make(chan struct{})
	go func() { p.close(); close(done) }()
	select {
	case <-done:
		t.Fatal("close returned while a job ran")
	case <-time.After(50 * time.Millisecond):
	}
	close(running)
	<-done
	after := make(chan struct{})
	p.run(func() { close(after) })
	<-after
	p.close() // idempotent
}

// Many runs at once from many goroutines, under the race detector: every
// job runs once.
func TestWarmPoolConcurrentRuns(t *testing.T) {
	p := &warmPool{linger: time.Millisecond}
	var ran sync.WaitGroup
	var mu sync.Mutex
	count := 0
	var callers sync.WaitGroup
	for range 8 {
		callers.Go(func() {
			for i := range 200 {
				ran.Add(1)
				p.run(func() {
					mu.Lock()
					count++
					mu.Unlock()
					ran.Done()
				})
				if i%7 == 0 {
					time.Sleep(time.Millisecond) // let some linger out
				}
			}
		})
	}
	callers.Wait()
	ran.Wait()
	p.close()
	require.Equal(t, 8*200, count)
}

// BenchmarkWarmPoolRun against BenchmarkGoStatement: a job that needs 8
// KiB of stack, as a KCP read loop that seals its reply does, started on a
// warm goroutine and on a fresh one.
func BenchmarkWarmPoolRun(b *testing.B) {
	p := &warmPool{}
	done := make(chan struct{})
	job := func() { deep(8); done <- struct{}{} }
	b.ReportAllocs()
	for b.Loop() {
		p.run(job)
		<-done
	}
	b.StopTimer()
	p.close()
}

func BenchmarkGoStatement(b *testing.B) {
	done := make(chan struct{})
	job := func() { deep(8); done <- struct{}{} }
	b.ReportAllocs()
	for b.Loop() {
		go job()
		<-done
	}
}
