//go:build !linux

package websocket

import "net"

// unsentProbe cannot ask this system what a socket holds unsent: datagrams
// always go through netcode's sender goroutine.
type unsentProbe struct{}

func newUnsentProbe(net.Conn) *unsentProbe { return nil }

func (*unsentProbe) unsent() (int, bool) { return 0, false }

func notSent(net.Conn) (int, bool) { return 0, false }
