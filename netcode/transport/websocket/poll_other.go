//go:build !linux

package websocket

import (
	"errors"
	"net"
)

// poller is Linux's (poll_linux.go): elsewhere a server's sessions are
// read by their Read.
type poller struct{}

func newPoller() (*poller, error) { return nil, errors.ErrUnsupported }

func pollable(net.Conn) bool { return false }

func (p *poller) close()            {}
func (p *poller) add(*Session) bool { return false }
func (p *poller) remove(*Session)   {}
func (p *poller) pause(*Session)    {}
func (p *poller) resume(*Session)   {}
