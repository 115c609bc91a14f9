//go:build !linux

package websocket

import "net"

func notSent(net.Conn) (int, bool) { return 0, false }
