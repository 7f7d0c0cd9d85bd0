package dispatch

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"go.uber.org/zap"

	"github.com/pyro-dispatch/pyro-dispatch/config"
	"github.com/pyro-dispatch/pyro-dispatch/frame"
	"github.com/pyro-dispatch/pyro-dispatch/pool"
	"github.com/pyro-dispatch/pyro-dispatch/routing"
	"github.com/pyro-dispatch/pyro-dispatch/tlsfiles"
)

// listenerTLS returns the TLS side of a listener (nil without tls): prev's, with its
// files read again, when the files are the same (a reload re-reads certificates without
// touching connections), else a new one.
func listenerTLS(c *config.ListenerTLS, prev *lnState) (*tlsfiles.Server, error) {
	if c == nil {
		return nil, nil
	}
	if prev != nil && prev.tls != nil && prev.cfg.TLS != nil && *prev.cfg.TLS == *c {
		return prev.tls, prev.tls.Reload()
	}
	return tlsfiles.NewServer(tlsfiles.ServerFiles{Cert: c.Cert, Key: c.Key, ClientCA: c.ClientCA, MinVersion: c.MinVersion})
}

// backendTLS is the TLS side of the dials to each backend group that has tls, by group
// name, and the configuration it was made from.
type backendTLS struct {
	clients map[string]*tlsfiles.Client
	files   map[string]config.BackendTLS
}

// newBackendTLS builds the TLS sides of cfg's groups, keeping (and re-reading the files
// of) those of prev whose settings did not change.
func newBackendTLS(cfg *config.Config, prev *backendTLS) (*backendTLS, error) {
	b := &backendTLS{clients: map[string]*tlsfiles.Client{}, files: map[string]config.BackendTLS{}}
	for _, g := range cfg.Backends {
		if g.TLS == nil {
			continue
		}
		var c *tlsfiles.Client
		var err error
		if old, ok := prev.files[g.Name]; ok && old == *g.TLS {
			c = prev.clients[g.Name]
			err = c.Reload()
		} else {
			c, err = tlsfiles.NewClient(tlsfiles.ClientFiles{CA: g.TLS.CA, Cert: g.TLS.Cert, Key: g.TLS.Key, ServerName: g.TLS.ServerName})
		}
		if err != nil {
			return nil, fmt.Errorf("backend group %s: tls: %w", g.Name, err)
		}
		b.clients[g.Name], b.files[g.Name] = c, *g.TLS
	}
	return b, nil
}

// dialMember connects to a member of a backend group, with TLS when its group has tls
// (the handshake done within ctx). Errors say what a person can act on.
func (s *Server) dialMember(ctx context.Context, m *routing.Member) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, m.Network, m.Address)
	if err != nil {
		return nil, fmt.Errorf("backend %s unreachable: %s", m.Addr, dialReason(err))
	}
	cli := s.backendTLS.Load().clients[m.GroupName()]
	if cli == nil {
		return c, nil
	}
	host, _, _ := net.SplitHostPort(m.Address)
	tc := tls.Client(c, cli.ConfigFor(host))
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("backend %s: TLS handshake failed: %s", m.Addr, tlsfiles.DialReason(err))
	}
	return tc, nil
}

// probe is the health check of a member (routing.Probe): dial (with TLS when its group
// has it), then a real Pyro4 handshake and PING.
func (s *Server) probeMember(ctx context.Context, m *routing.Member) error {
	c, err := s.dialMember(ctx, m)
	if err != nil {
		return err
	}
	return pool.Probe(ctx, c)
}

// tlsHandshakeTimeout bounds a client's TLS handshake when timeouts.header is off.
const tlsHandshakeTimeout = 10 * time.Second

// acceptTLS performs the TLS handshake with a new client within the header timeout; a
// failure is one log line naming the client and the reason (a plain Pyro4 client, no
// certificate, one from another CA, ...), and the connection is closed.
func (s *Session) acceptTLS(tc *tls.Conn) bool {
	d := s.srv.cfg.Timeouts.Header
	if d <= 0 {
		d = tlsHandshakeTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		s.logger().Warn("closing client: TLS handshake failed", zap.String("reason", tlsfiles.AcceptReason(err)), zap.Error(err))
		if s.srv.metrics != nil {
			s.srv.metrics.RefusedConnection(s.st.name, causeTLS)
		}
		var rhe tls.RecordHeaderError
		if errors.As(err, &rhe) && rhe.Conn != nil && bytes.HasPrefix(rhe.RecordHeader[:], []byte("PYRO")) {
			refusePlain(rhe.Conn, d)
		}
		return false
	}
	return true
}

// refusePlain answers a plain Pyro4 client on a TLS listener with a CONNECTFAIL (in
// marshal, which every Pyro4 client reads; a new proxy's CONNECT has seq 0), so that it
// raises "connection ... rejected: pyro-dispatch: ..." rather than a bare closed
// connection; then the rest of its CONNECT is read past, so that closing does not reset
// the connection before the answer was read.
func refusePlain(c net.Conn, timeout time.Duration) {
	payload, _ := frame.AppendStringPayload(nil, frame.Marshal, "pyro-dispatch: this listener speaks TLS only (set Pyro4's SSL config item to True)")
	c.SetDeadline(time.Now().Add(min(timeout, time.Second)))
	if _, err := c.Write(frame.AppendMessage(nil, frame.Header{Type: frame.ConnectFail, Serializer: frame.Marshal}, nil, payload)); err != nil {
		return
	}
	io.Copy(io.Discard, io.LimitReader(c, 1<<20)) // until the client closes, or the deadline
}
