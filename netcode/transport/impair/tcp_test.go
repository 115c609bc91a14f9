package impair

import (
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The proxy forwards both ways at its rate, and passes an end of stream
// on.
func TestTCPProxyRate(t *testing.T) {
	p, err := NewTCPProxy(TCPConfig{Upstream: echoServer(t), Rate: 100 << 10})
	require.NoError(t, err)
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr().String())
	require.NoError(t, err)
	defer c.Close()

	const n = 30 << 10 // 0.3 s each way at 100 KiB/s, both ways at once
	start := time.Now()
	go func() {
		_, _ = c.Write(make([]byte, n))
		_ = c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	require.NoError(t, err)
	took := time.Since(start)
	require.Len(t, got, n)
	t.Logf("%d bytes echoed through a 100 KiB/s proxy in %v", n, took)
	require.Greater(t, took, 250*time.Millisecond, "capped")
	require.Less(t, took, 3*time.Second)
	require.NoError(t, p.Close())
	require.ErrorIs(t, p.Close(), net.ErrClosed)
}

// echoServer accepts one TCP connection on loopback and echoes it until
// its end; it returns the address. The listener closes with the test.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(c, c)
	}()
	return ln.Addr().String()
}

// Reset aborts the connections through the proxy with a reset, as a
// rebinding NAT does to a TCP flow, and a new connection goes through.
func TestTCPProxyReset(t *testing.T) {
	p, err := NewTCPProxy(TCPConfig{Upstream: echoServer(t)})
	require.NoError(t, err)
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte("ping"))
	require.NoError(t, err)
	buf := make([]byte, 4)
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	require.Equal(t, 2, p.Reset())
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Read(buf)
	require.ErrorIs(t, err, syscall.ECONNRESET, "a reset, not an end of stream")
}
