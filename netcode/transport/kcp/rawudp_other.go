//go:build !linux

package kcp

import (
	"errors"
	"net"
	"net/netip"

	"github.com/roomwire/roomwire/netcode/transport"
)

// rawUDP is a socket kept out of Go's network poller; only Linux has one,
// so elsewhere a listener reads and writes its *net.UDPConn through the
// poller. None is ever made here.
type rawUDP struct{ PacketConn }

func openRaw(*net.UDPConn) (*rawUDP, error) { return nil, errors.ErrUnsupported }

type recvBufs struct{ hdrs []struct{} }

func newRecvBufs(n, size int) *recvBufs                          { return &recvBufs{} }
func (r *recvBufs) packet(int) ([]byte, netip.AddrPort)          { return nil, netip.AddrPort{} }
func (u *rawUDP) recv(*recvBufs) (int, error)                    { return 0, net.ErrClosed }
func (u *rawUDP) wait() error                                    { return net.ErrClosed }
func (u *rawUDP) arm(bool) error                                 { return net.ErrClosed }
func (u *rawUDP) writeBatch(*sendBufs, []transport.Packet) error { return net.ErrClosed }

type sendBufs struct{}
