package websocket

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/coder/websocket"

	"github.com/roomwire/roomwire/reliable"
)

// Dial connects to a Roomwire server's WebSocket endpoint at rawURL,
// ws://host:port/path or wss://host:port/path (the game server's is /ws on
// its HTTP side port), offering the subprotocol roomwire.v1. It sends no
// Origin header. A refused upgrade comes back as an error with the server's
// HTTP status and reason.
func Dial(ctx context.Context, rawURL string, cfg Config) (*Session, error) {
	cfg.populate()
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("websocket: dial: %w", err)
	}
	if u.Scheme != "ws" && u.Scheme != "wss" {
		return nil, fmt.Errorf("websocket: dial %s: the scheme must be ws or wss", rawURL)
	}
	d := &net.Dialer{}
	netDial := cfg.NetDial
	if netDial == nil {
		netDial = d.DialContext
	}
	if cfg.LocalAddr != "" && cfg.NetDial == nil {
		la, err := net.ResolveTCPAddr("tcp", cfg.LocalAddr)
		if err != nil {
			return nil, fmt.Errorf("websocket: local address: %w", err)
		}
		d.LocalAddr = la
	}
	tlsConf := &tls.Config{}
	if cfg.TLS != nil {
		tlsConf = cfg.TLS.Clone()
	}
	var (
		mu   sync.Mutex
		conn net.Conn // the TCP connection the HTTP client dialled
	)
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := netDial(ctx, network, addr)
			if err == nil {
				c = withEOR(c)
				mu.Lock()
				conn = c
				mu.Unlock()
			}
			return c, err
		},
		TLSClientConfig:    tlsConf,
		DisableCompression: true,
	}
	defer tr.CloseIdleConnections()
	heard := new(activity)
	ws, resp, err := websocket.Dial(ctx, rawURL, &websocket.DialOptions{
		HTTPClient:     &http.Client{Transport: tr},
		Subprotocols:   []string{Subprotocol},
		OnPingReceived: heard.onPing,
		OnPongReceived: heard.onPong,
	})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
			return nil, fmt.Errorf("websocket: dial %s: %s: %s", rawURL, resp.Status, strings.TrimSpace(string(b)))
		}
		return nil, fmt.Errorf("websocket: dial %s: %w", rawURL, err)
	}
	mu.Lock()
	c := conn
	mu.Unlock()
	if ws.Subprotocol() != Subprotocol || c == nil {
		_ = ws.Close(closeStatus(uint16(reliable.CloseProtocolError)), "no subprotocol "+Subprotocol)
		return nil, fmt.Errorf("websocket: dial %s: the server did not select the subprotocol %s", rawURL, Subprotocol)
	}
	_ = tune(c, cfg.NotSentLowat)
	return newSession(ws, c, heard, &cfg, nil), nil
}
