package loadtest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/roomwire/roomwire/netcode"
	"github.com/roomwire/roomwire/netcode/transport"
	"github.com/roomwire/roomwire/netcode/transport/impair"
	"github.com/roomwire/roomwire/netcode/transport/kcp"
	"github.com/roomwire/roomwire/netcode/transport/quic"
	"github.com/roomwire/roomwire/netcode/transport/websocket"
)

// impairedDial returns a ClientConfig.Dial that dials rawURL's transport
// as the client itself would with cfg (its TLS, token, transport
// configurations and local addresses), but over sockets on path: a UDP
// impairment conn for quic:// and kcp:// (impair.NewDuplex: the path's
// profile each way, its blackouts), a StreamConn for ws:// and wss://
// (blackouts only: a profile that impairs cannot ride TCP). Every dial
// opens new sockets on the same network, so a client that reconnects
// during a blackout finds the new path as dark as the old. The Dial
// ignores the host it is given and dials rawURL.
func impairedDial(rawURL string, cfg netcode.ClientConfig, path *netPath) (func(context.Context, string) (transport.Session, error), error) {
	u, err := url.Parse(strings.TrimSpace(rawURL))
	if err != nil {
		return nil, fmt.Errorf("loadtest: bad server URL %q: %w", rawURL, err)
	}
	profiled := impairs(path.profile.ToServer) || impairs(path.profile.ToClient)
	if profiled && u.Scheme != "quic" && u.Scheme != "kcp" {
		return nil, fmt.Errorf("loadtest: a network profile cannot impair %s:// (want quic:// or kcp://: profiles impair UDP)", u.Scheme)
	}
	n := path.network
	switch u.Scheme {
	case "quic":
		return func(ctx context.Context, _ string) (transport.Session, error) {
			ra, err := net.ResolveUDPAddr("udp", u.Host)
			if err != nil {
				return nil, fmt.Errorf("quic: dial %s: %w", u.Host, err)
			}
			pc, err := listenImpaired(cfg.QUIC.LocalAddr, path)
			if err != nil {
				return nil, err
			}
			return quic.DialOwned(ctx, pc, ra, clientTLS(cfg, u), cfg.QUIC)
		}, nil
	case "kcp":
		return func(ctx context.Context, _ string) (transport.Session, error) {
			tok := netcode.DialToken(ctx) // a resume ticket on a redial
			if tok == nil {
				tok = cfg.Token
			}
			if tok == nil {
				return nil, errors.New("loadtest: kcp:// needs a connect token (Config.TokenKey)")
			}
			ra, err := net.ResolveUDPAddr("udp", u.Host)
			if err != nil {
				return nil, fmt.Errorf("kcp: dial %s: %w", u.Host, err)
			}
			pc, err := listenImpaired(cfg.KCP.LocalAddr, path)
			if err != nil {
				return nil, err
			}
			return kcp.DialConn(ctx, pc, ra.AddrPort(), tok, cfg.KCP) // owns pc
		}, nil
	case "ws", "wss":
		wc := cfg.WebSocket
		if wc.MaxFrame == 0 {
			wc.MaxFrame = cfg.MaxFrame
		}
		if u.Scheme == "wss" {
			wc.TLS = clientTLS(cfg, u)
		}
		var d net.Dialer
		if wc.LocalAddr != "" {
			la, err := net.ResolveTCPAddr("tcp", wc.LocalAddr)
			if err != nil {
				return nil, fmt.Errorf("loadtest: local address: %w", err)
			}
			d.LocalAddr = la
		}
		wc.NetDial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return impair.NewStreamConn(c, n), nil
		}
		return func(ctx context.Context, _ string) (transport.Session, error) {
			return websocket.Dial(ctx, u.String(), wc)
		}, nil
	}
	return nil, fmt.Errorf("loadtest: a blackout cannot darken %s:// (want quic://, kcp://, ws:// or wss://)", u.Scheme)
}

// listenImpaired opens a UDP socket at local (empty: the system's choice)
// on path, with seeds of its own.
func listenImpaired(local string, path *netPath) (*impair.Conn, error) {
	var la *net.UDPAddr
	if local != "" {
		var err error
		if la, err = net.ResolveUDPAddr("udp", local); err != nil {
			return nil, fmt.Errorf("loadtest: local address: %w", err)
		}
	}
	c, err := net.ListenUDP("udp", la)
	if err != nil {
		return nil, fmt.Errorf("loadtest: listen: %w", err)
	}
	send, receive := path.configs()
	return impair.NewDuplex(c, send, receive), nil
}

// clientTLS is the TLS configuration the client would use for the server
// at u.
func clientTLS(cfg netcode.ClientConfig, u *url.URL) *tls.Config {
	tc := cfg.TLS
	if tc == nil {
		tc = &tls.Config{ServerName: u.Hostname()}
	} else {
		tc = tc.Clone()
	}
	if cfg.InsecureSkipVerify {
		tc.InsecureSkipVerify = true
	}
	return tc
}
