package kcp

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/roomwire/roomwire/netcode/token"
)

// What 1,000 idle sessions cost a listener: the clients run in a child
// process (this test binary, TestIdleClients), so that the listener's
// heap and CPU time are all that is measured here.

const (
	idleClientsEnv = "KCP_IDLE_CLIENTS" // the listener's address, in the child
	idleSessions   = 1000
)

// BenchmarkIdleSessions opens idleSessions sessions against one listener,
// each of which echoes one reliable message and then only keeps alive,
// and reports the listener's heap bytes per session and its CPU share of
// one core while they idle. KCP_HEAP_PROFILE and KCP_CPU_PROFILE name
// files for a heap profile at the measurement and a CPU profile of the
// idle time.
func BenchmarkIdleSessions(b *testing.B) {
	for range b.N {
		l := listen(b, Config{MaxClients: 2 * idleSessions, MaxClientsPerIP: 2 * idleSessions, MaxTokensPerIP: 2 * idleSessions})
		before := heap()

		child := exec.Command(os.Args[0], "-test.run=^TestIdleClients$", "-test.count=1")
		child.Env = append(os.Environ(), idleClientsEnv+"="+l.Addr().String())
		child.Stderr = os.Stderr
		stdout, err := child.StdoutPipe()
		require.NoError(b, err)
		require.NoError(b, child.Start())
		b.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })

		buf := make([]byte, 64)
		for range idleSessions {
			s := accept(b, l)
			_, err := io.ReadFull(s, buf)
			require.NoError(b, err)
			_, err = s.Write(buf)
			require.NoError(b, err)
		}
		ready := bufio.NewScanner(stdout)
		require.True(b, ready.Scan(), "the clients say they are all connected")
		require.Equal(b, "ready", ready.Text())
		time.Sleep(500 * time.Millisecond) // the last acknowledgements
		b.ReportMetric(float64(heap()-before)/idleSessions, "heap_B/session")
		if f, err := os.Create(os.Getenv("KCP_HEAP_PROFILE")); err == nil {
			_ = pprof.WriteHeapProfile(f)
			_ = f.Close()
		}

		const window = 3 * time.Second
		prof, _ := os.Create(os.Getenv("KCP_CPU_PROFILE"))
		if prof != nil {
			_ = pprof.StartCPUProfile(prof)
		}
		start, cpu0 := time.Now(), cpuTime()
		time.Sleep(window)
		share := float64(cpuTime()-cpu0) / float64(time.Since(start))
		if prof != nil {
			pprof.StopCPUProfile()
			_ = prof.Close()
		}
		b.ReportMetric(100*share, "cpu_%core")
		st := l.Stats()
		require.Equal(b, idleSessions, st.Sessions, "every session lived through the idle time: %+v", st)
		_ = l.Close()
	}
}

// heap is the live heap after two collections (the second empties the
// pools' victim caches).
func heap() int64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestIdleClients is BenchmarkIdleSessions' child: it dials idleSessions
// sessions, echoes one message on each, says "ready" and idles until it
// is killed. It is skipped unless run as the child.
func TestIdleClients(t *testing.T) {
	addr := os.Getenv(idleClientsEnv)
	if addr == "" {
		t.Skip("the child process of BenchmarkIdleSessions")
	}
	ctx := context.Background()
	msg, buf := make([]byte, 64), make([]byte, 64)
	sessions := make([]*Session, 0, idleSessions)
	for i := range idleSessions {
		s, err := Dial(ctx, addr, testToken(t, token.DevKey, time.Minute), Config{HandshakeTimeout: 10 * time.Second, Timeout: time.Minute})
		require.NoError(t, err, "session %d", i)
		_, err = s.Write(msg)
		require.NoError(t, err)
		_, err = io.ReadFull(s, buf)
		require.NoError(t, err)
		sessions = append(sessions, s)
	}
	fmt.Println("ready")
	_ = os.Stdout.Sync()
	time.Sleep(time.Hour)
	runtime.KeepAlive(sessions)
}
