package atls

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"

	"google.golang.org/grpc/credentials"
)

// Credentials are gRPC transport credentials that run an aTLS client handshake with a fresh
// nonce per connection and record every handshake.
type Credentials struct {
	opts Options

	mu         sync.Mutex
	handshakes []*Handshake
}

// NewCredentials returns aTLS client credentials.
func NewCredentials(opts Options) *Credentials {
	return &Credentials{opts: opts}
}

// Handshakes returns the handshakes that succeeded so far.
func (c *Credentials) Handshakes() []*Handshake {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Handshake(nil), c.handshakes...)
}

// ClientHandshake runs the aTLS handshake on rawConn.
func (c *Credentials) ClientHandshake(ctx context.Context, authority string, rawConn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	cfg, hs, err := Config(c.opts)
	if err != nil {
		return nil, nil, err
	}
	host, _, err := net.SplitHostPort(authority)
	if err != nil {
		host = authority
	}
	cfg.ServerName = host
	conn := tls.Client(rawConn, cfg)
	if err := conn.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, nil, err
	}
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		conn.Close()
		return nil, nil, refuse("the server negotiated ALPN %q, want h2", p)
	}
	c.mu.Lock()
	c.handshakes = append(c.handshakes, hs)
	c.mu.Unlock()
	return conn, credentials.TLSInfo{
		State:          conn.ConnectionState(),
		CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
	}, nil
}

// ServerHandshake is not supported: this is a client.
func (c *Credentials) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("atls: client credentials cannot serve")
}

// Info says TLS.
func (c *Credentials) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls", SecurityVersion: "1.3"}
}

// Clone returns credentials with the same options (and a fresh handshake record).
func (c *Credentials) Clone() credentials.TransportCredentials {
	return NewCredentials(c.opts)
}

// OverrideServerName is ignored (the server name only goes into SNI).
func (c *Credentials) OverrideServerName(string) error { return nil }
