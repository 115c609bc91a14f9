package webtransport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"

	quicgo "github.com/quic-go/quic-go"
	wtgo "github.com/quic-go/webtransport-go"

	"github.com/roomwire/roomwire/reliable"
)

// StatusError is a server's answer to the session request other than 2xx:
// 403 for an Origin it does not allow, 404 for another path than /wt.
type StatusError struct {
	StatusCode int
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("webtransport: server answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
}

// Dial opens a WebTransport session at rawURL ("https://host:port/wt";
// the scheme "wt" means https, no port 443, and an empty path /wt), offering ALPN h3
// with tlsConf, and opens the reliable stream. cfg.QUIC tunes the QUIC
// connection; cfg.Origin, if set, is sent as a browser would.
func Dial(ctx context.Context, rawURL string, tlsConf *tls.Config, cfg Config) (*Session, error) {
	if tlsConf == nil {
		return nil, errors.New("webtransport: dial: a TLS config is required")
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("webtransport: bad URL %q: %w", rawURL, err)
	}
	switch u.Scheme {
	case "https":
	case "wt":
		u.Scheme = "https"
	default:
		return nil, fmt.Errorf("webtransport: URL %q: want https:// or wt://", rawURL)
	}
	if u.Path == "" {
		u.Path = Path
	}
	if u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), "443") // https's, as browsers assume
	}
	tc := tlsConf.Clone()
	tc.NextProtos = []string{ALPN}
	if tc.ServerName == "" {
		tc.ServerName = u.Hostname()
	}
	qc := cfg.QUIC.QUICConfig()
	qc.EnableStreamResetPartialDelivery = true // webtransport-go requires it

	var pc *net.UDPConn
	var conn *quicgo.Conn
	if cfg.QUIC.LocalAddr == "" {
		conn, err = quicgo.DialAddr(ctx, u.Host, tc, qc)
	} else {
		conn, pc, err = dialFrom(ctx, cfg.QUIC.LocalAddr, u.Host, tc, qc)
	}
	if err != nil {
		return nil, fmt.Errorf("webtransport: dial %s: %w", u.Host, err)
	}
	fail := func(err error) (*Session, error) {
		_ = conn.CloseWithError(h3NoError, "")
		if pc != nil {
			<-conn.Context().Done()
			_ = pc.Close()
		}
		return nil, fmt.Errorf("webtransport: dial %s: %w", u, err)
	}
	var tr wtgo.Transport
	cc, err := tr.NewClientConn(conn)
	if err != nil {
		return fail(err)
	}
	var hdr http.Header
	if cfg.Origin != "" {
		hdr = http.Header{"Origin": {cfg.Origin}}
	}
	rsp, sess, err := cc.Dial(ctx, u.String(), hdr)
	if err != nil {
		if rsp != nil && (rsp.StatusCode < 200 || rsp.StatusCode > 299) {
			err = &StatusError{StatusCode: rsp.StatusCode}
		}
		return fail(err)
	}
	st, err := sess.OpenStreamSync(ctx)
	if err == nil {
		// The stream's header goes out now: the server answers a stream it
		// sees with its CHALLENGE, which the HELLO waits for.
		_, err = st.Write(nil)
	}
	if err != nil {
		_ = sess.CloseWithError(wtgo.SessionErrorCode(reliable.CloseNormal), "no stream")
		return fail(err)
	}
	var own net.PacketConn
	if pc != nil {
		own = pc
	}
	return newSession(sess, conn, st, own), nil
}

// dialFrom dials QUIC from a socket bound to local.
func dialFrom(ctx context.Context, local, remote string, tc *tls.Config, qc *quicgo.Config) (*quicgo.Conn, *net.UDPConn, error) {
	la, err := net.ResolveUDPAddr("udp", local)
	if err != nil {
		return nil, nil, fmt.Errorf("local address: %w", err)
	}
	ra, err := net.ResolveUDPAddr("udp", remote)
	if err != nil {
		return nil, nil, err
	}
	pc, err := net.ListenUDP("udp", la)
	if err != nil {
		return nil, nil, fmt.Errorf("dial from %s: %w", local, err)
	}
	conn, err := quicgo.Dial(ctx, pc, ra, tc, qc)
	if err != nil {
		_ = pc.Close()
		return nil, nil, err
	}
	return conn, pc, nil
}
