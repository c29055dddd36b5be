// Package atlstest is a Go aTLS server for tests: it answers a client's ALPN nonce with a
// self-signed certificate carrying a Go-encoded sevsnp.Attestation (no real SNP report, no
// signature), and asks for a client certificate with its own nonce as the only acceptable CA.
package atlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"math/big"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"contrast-rs/conformance/atls"
	"contrast-rs/conformance/sevsnp"
)

// Server configures the fake aTLS server; the zero value plus HostData is a well-behaved one.
type Server struct {
	// HostData goes into the report's HOST_DATA.
	HostData []byte
	// WrongReportData puts SHA-512(spki ‖ another nonce) into REPORT_DATA.
	WrongReportData bool
	// NoExtension leaves the attestation extension out.
	NoExtension bool
	// Garbage puts bytes that are not an Attestation into the extension.
	Garbage bool
	// Validity overrides the certificate's validity (default now-2h .. now+2h).
	NotBefore, NotAfter time.Time
	// SignedByOtherKey signs the certificate with a key other than its own (issuer = subject).
	SignedByOtherKey bool
	// CAs overrides the acceptable-CA subjects (default: one CN=base64(nonce)).
	CAs func(nonce []byte) []*x509.Certificate
	// Sign signs the report with a VCEK of a test ARK/ASK/VCEK chain, carried in the
	// attestation (otherwise the signature area is zero and there is no chain).
	Sign bool
	// TamperAfterSigning changes the measurement after the report is signed.
	TamperAfterSigning bool
	// BreakChain signs the VCEK certificate with a key other than the ASK's.
	BreakChain bool

	chainOnce sync.Once
	chain     *Chain
	chainErr  error

	mu sync.Mutex
	// ClientCerts are the client certificates seen, one entry per handshake (nil if none).
	ClientCerts [][]byte
	// Nonces are the server nonces sent.
	Nonces [][]byte
}

// TLSConfig is the server's configuration; each handshake gets its own key, nonce and
// certificate.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			return s.perConnection(hello)
		},
	}
}

func (s *Server) perConnection(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	var clientNonce []byte
	for _, p := range hello.SupportedProtos {
		if strings.HasPrefix(p, "atls") {
			if !strings.HasPrefix(p, atls.ALPNPrefix) {
				return nil, errors.New("unsupported aTLS version")
			}
			n, err := hex.DecodeString(strings.TrimPrefix(p, atls.ALPNPrefix))
			if err != nil {
				return nil, err
			}
			clientNonce = n
		}
	}
	if clientNonce == nil {
		return nil, errors.New("no aTLS nonce in ALPN")
	}
	cert, err := s.certificate(clientNonce)
	if err != nil {
		return nil, err
	}
	serverNonce, err := atls.NewNonce()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.Nonces = append(s.Nonces, serverNonce)
	s.mu.Unlock()
	var cas []*x509.Certificate
	if s.CAs != nil {
		cas = s.CAs(serverNonce)
	} else {
		ca, err := NonceCA(serverNonce)
		if err != nil {
			return nil, err
		}
		cas = []*x509.Certificate{ca}
	}
	pool := x509.NewCertPool()
	for _, ca := range cas {
		pool.AddCert(ca)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"h2"},
		ClientAuth:   tls.RequestClientCert,
		ClientCAs:    pool,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			if len(raw) == 0 {
				s.ClientCerts = append(s.ClientCerts, nil)
			} else {
				s.ClientCerts = append(s.ClientCerts, raw[0])
			}
			return nil
		},
	}, nil
}

// NonceCA is a throwaway self-signed certificate whose subject is CN=base64std(nonce).
func NonceCA(nonce []byte) (*x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(0),
		Subject:               pkix.Name{CommonName: base64.StdEncoding.EncodeToString(nonce)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// Attestation is a Go-encoded sevsnp.Attestation with the given report data and host data
// (other fields plausible but not a real report).
func Attestation(reportData, hostData []byte) ([]byte, error) {
	a := &sevsnp.Attestation{
		Report: &sevsnp.Report{
			Version:         3,
			Policy:          0x30000,
			FamilyId:        make([]byte, 16),
			ImageId:         make([]byte, 16),
			ReportData:      reportData,
			Measurement:     make([]byte, 48),
			HostData:        hostData,
			IdKeyDigest:     make([]byte, 48),
			ReportId:        make([]byte, 32),
			ReportIdMa:      make([]byte, 32),
			AuthorKeyDigest: make([]byte, 48),
			SignatureAlgo:   1,
			ChipId:          make([]byte, 64),
			Signature:       make([]byte, 512),
		},
		CertificateChain: &sevsnp.CertificateChain{
			Extras: map[string][]byte{"00569ee4-e480-4fba-bbf4-45b629901180": []byte("crl")},
		},
		Product: &sevsnp.SevProduct{
			Name:            sevsnp.SevProduct_SEV_PRODUCT_MILAN,
			MachineStepping: wrapperspb.UInt32(0),
		},
	}
	return proto.Marshal(a)
}

// Certificate is the aTLS server certificate for the client's nonce.
func (s *Server) certificate(clientNonce []byte) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return tls.Certificate{}, err
	}
	nonce := clientNonce
	if s.WrongReportData {
		nonce = make([]byte, len(clientNonce))
	}
	var evidence []byte
	if s.Sign {
		s.chainOnce.Do(func() { s.chain, s.chainErr = NewChain(s.BreakChain) })
		if s.chainErr != nil {
			return tls.Certificate{}, s.chainErr
		}
		evidence, err = s.chain.SignedAttestation(atls.ReportData(spki, nonce), s.HostData, s.TamperAfterSigning)
	} else {
		evidence, err = Attestation(atls.ReportData(spki, nonce), s.HostData)
	}
	if err != nil {
		return tls.Certificate{}, err
	}
	if s.Garbage {
		evidence = []byte{0xff, 0xff, 0xff}
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return tls.Certificate{}, err
	}
	notBefore, notAfter := time.Now().Add(-2*time.Hour), time.Now().Add(2*time.Hour)
	if !s.NotBefore.IsZero() {
		notBefore, notAfter = s.NotBefore, s.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "Contrast"},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if !s.NoExtension {
		tmpl.ExtraExtensions = []pkix.Extension{{Id: atls.OIDRawSNPReport, Value: evidence}}
	}
	signer := key
	if s.SignedByOtherKey {
		if signer, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return tls.Certificate{}, err
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), signer)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
