// Package atls is the client side of upstream Contrast's aTLS, written independently of
// contrast-rs (in Go, with crypto/tls) for the conformance check in conformance/go.
//
// What it does, after shared/reference/contrast-wire.md §3.5:
//
//   - A fresh 32-byte nonce per connection goes to the server as the first ALPN protocol,
//     "atls:v1:nonce:" followed by the nonce in lowercase hex; "h2" follows.
//   - The server's certificate is not checked against any CA (InsecureSkipVerify); instead
//     VerifyPeerCertificate takes the leaf, requires it to be self-signed (issuer = subject,
//     signature by its own key) and valid now, finds the extension 1.3.9901.2.1, unmarshals the
//     go-sev-guest `sevsnp.Attestation` in it, and checks
//     report_data == SHA-512(PKIX DER of the leaf's public key ‖ nonce) and
//     host_data == the expected Coordinator policy hash (§3.7).
//   - The server's own nonce arrives as the only acceptable client CA, a DN whose CN is the
//     nonce in standard base64; GetClientCertificate reads it and presents a self-signed
//     certificate over the workload-owner key (ECDSA P-384), or no certificate.
//
// Optionally (Options.VerifyReportSignature) the report is rebuilt from the protobuf fields
// into the ABI's 1184 bytes and its signature checked with the VCEK (or VLEK) that the
// attestation carries, and that certificate's chain ASK <- ARK as far as present.
//
// NOT checked: that the ARK is AMD's (the simulated platform has its own), revocation (CRL),
// the TCB, the guest policy, the measurement and the rest of the SNP reference values. This is
// a check of the wire protocol (where the evidence is, how it is encoded and bound to the
// handshake), not an attestation verifier.
package atls

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"contrast-rs/conformance/sevsnp"
)

// NonceSize is the length of both sides' nonces.
const NonceSize = 32

// ALPNPrefix starts the ALPN protocol that carries the client's nonce.
const ALPNPrefix = "atls:v1:nonce:"

// OIDRawSNPReport is the certificate extension that carries the SEV-SNP evidence.
var OIDRawSNPReport = asn1.ObjectIdentifier{1, 3, 9901, 2, 1}

// oidCommonName is the X.520 commonName attribute.
var oidCommonName = asn1.ObjectIdentifier{2, 5, 4, 3}

// NewNonce returns NonceSize random bytes.
func NewNonce() ([]byte, error) {
	nonce := make([]byte, NonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("generating a nonce: %w", err)
	}
	return nonce, nil
}

// NextProtos is the client's ALPN list for nonce: the nonce protocol, then "h2".
func NextProtos(nonce []byte) []string {
	return []string{ALPNPrefix + hex.EncodeToString(nonce), "h2"}
}

// ReportData is what the server must put into REPORT_DATA: SHA-512(spki ‖ nonce), where spki
// is the DER SubjectPublicKeyInfo of its certificate's key.
func ReportData(spki, nonce []byte) []byte {
	h := sha512.New()
	h.Write(spki)
	h.Write(nonce)
	return h.Sum(nil)
}

// HostDataMismatchError is returned when the evidence is bound to the handshake but its
// HOST_DATA is not the expected Coordinator policy hash: the peer is not the expected
// Coordinator. It is not temporary (gRPC does not retry it).
type HostDataMismatchError struct {
	Got, Want []byte
}

func (e *HostDataMismatchError) Error() string {
	return fmt.Sprintf("aTLS: the server's SNP HOST_DATA %x is not the expected Coordinator policy hash %x", e.Got, e.Want)
}

// Temporary tells gRPC not to retry.
func (e *HostDataMismatchError) Temporary() bool { return false }

// VerificationError is any other refusal of the server's certificate or evidence.
type VerificationError struct {
	Reason string
}

func (e *VerificationError) Error() string { return "aTLS: " + e.Reason }

// Temporary tells gRPC not to retry.
func (e *VerificationError) Temporary() bool { return false }

func refuse(format string, args ...interface{}) error {
	return &VerificationError{Reason: fmt.Sprintf(format, args...)}
}

// VerifyServerCertificate checks the server's leaf certificate (rawCerts[0]) and the SEV-SNP
// evidence in it against the client's nonce and the expected HOST_DATA, and returns the
// evidence.
//
// With verifySignature, the report's signature and its certificate chain are checked too
// (VerifyReportSignature; before HOST_DATA, so that a HOST_DATA refusal means everything else
// verified), and the summary is returned.
func VerifyServerCertificate(rawCerts [][]byte, nonce, expectedHostData []byte, now time.Time, verifySignature bool) (*sevsnp.Attestation, string, error) {
	if len(rawCerts) == 0 {
		return nil, "", refuse("the server sent no certificate")
	}
	leaf, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return nil, "", refuse("parsing the server's certificate: %v", err)
	}
	if err := checkSelfSigned(leaf, now); err != nil {
		return nil, "", err
	}
	var evidence []byte
	found := 0
	for _, ext := range leaf.Extensions {
		if ext.Id.Equal(OIDRawSNPReport) {
			evidence = ext.Value
			found++
		}
	}
	switch found {
	case 0:
		return nil, "", refuse("the server's certificate has no SEV-SNP attestation extension %v", OIDRawSNPReport)
	case 1:
	default:
		return nil, "", refuse("the server's certificate has %d extensions %v", found, OIDRawSNPReport)
	}
	var attestation sevsnp.Attestation
	if err := proto.Unmarshal(evidence, &attestation); err != nil {
		return nil, "", refuse("the extension %v is not a sevsnp.Attestation protobuf: %v", OIDRawSNPReport, err)
	}
	report := attestation.GetReport()
	if report == nil {
		return nil, "", refuse("the sevsnp.Attestation has no report")
	}
	want := ReportData(leaf.RawSubjectPublicKeyInfo, nonce)
	if !bytes.Equal(report.GetReportData(), want) {
		return nil, "", refuse("REPORT_DATA %x is not SHA-512(certificate public key ‖ nonce) = %x: the evidence is not bound to this handshake", report.GetReportData(), want)
	}
	summary := "report signature not checked"
	if verifySignature {
		if summary, err = VerifyReportSignature(&attestation); err != nil {
			return nil, "", refuse("%v", err)
		}
	}
	if !bytes.Equal(report.GetHostData(), expectedHostData) {
		return nil, "", &HostDataMismatchError{Got: report.GetHostData(), Want: expectedHostData}
	}
	return &attestation, summary, nil
}

// checkSelfSigned requires the certificate to be issued by itself, signed by its own key,
// valid at now, and acceptable to Go's verifier with itself as the only root (as upstream's
// client does: validity, no unhandled critical extension).
func checkSelfSigned(cert *x509.Certificate, now time.Time) error {
	if !bytes.Equal(cert.RawIssuer, cert.RawSubject) {
		return refuse("the server's certificate is not self-signed: issuer %q, subject %q", cert.Issuer, cert.Subject)
	}
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		return refuse("the server's certificate is not signed by its own key: %v", err)
	}
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return refuse("the server's certificate is not valid now (%s): valid from %s to %s", now.UTC().Format(time.RFC3339), cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339))
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	if _, err := cert.Verify(x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return refuse("the server's certificate does not verify as a self-signed chain: %v", err)
	}
	return nil
}

// ServerNonce reads the server's nonce from the acceptable CAs of its CertificateRequest:
// exactly one distinguished name whose commonName is the nonce in standard base64.
func ServerNonce(acceptableCAs [][]byte) ([]byte, error) {
	if len(acceptableCAs) != 1 {
		return nil, refuse("the server's CertificateRequest names %d acceptable CAs, want exactly 1 (the server's nonce)", len(acceptableCAs))
	}
	var rdns pkix.RDNSequence
	rest, err := asn1.Unmarshal(acceptableCAs[0], &rdns)
	if err != nil {
		return nil, refuse("the acceptable CA is not a DER distinguished name: %v", err)
	}
	if len(rest) != 0 {
		return nil, refuse("the acceptable CA has %d trailing bytes", len(rest))
	}
	var cn []string
	for _, rdn := range rdns {
		for _, attribute := range rdn {
			if attribute.Type.Equal(oidCommonName) {
				value, ok := attribute.Value.(string)
				if !ok {
					return nil, refuse("the acceptable CA's commonName is not a string")
				}
				cn = append(cn, value)
			}
		}
	}
	if len(cn) != 1 {
		return nil, refuse("the acceptable CA has %d commonName attributes, want 1", len(cn))
	}
	nonce, err := base64.StdEncoding.DecodeString(cn[0])
	if err != nil {
		return nil, refuse("the acceptable CA's commonName %q is not standard base64: %v", cn[0], err)
	}
	if len(nonce) != NonceSize {
		return nil, refuse("the server's nonce has %d bytes, want %d", len(nonce), NonceSize)
	}
	return nonce, nil
}

// SelfSignedCertificate makes the client's aTLS certificate over key: CN=Contrast, a random
// serial below 2^128, valid from now-2h to now+2h, no attestation extension (the client does
// not attest).
func SelfSignedCertificate(key crypto.Signer, now time.Time) (tls.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generating a serial number: %w", err)
	}
	template := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "Contrast"},
		NotBefore:    now.Add(-2 * time.Hour),
		NotAfter:     now.Add(2 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, key.Public(), key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("creating the client certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// LoadOwnerKey reads a workload-owner key: ECDSA P-384, PEM "EC PRIVATE KEY" (SEC1) or
// "PRIVATE KEY" (PKCS#8).
func LoadOwnerKey(pemBytes []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	var key *ecdsa.PrivateKey
	switch block.Type {
	case "EC PRIVATE KEY":
		k, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing the SEC1 key: %w", err)
		}
		key = k
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing the PKCS#8 key: %w", err)
		}
		ec, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("the PKCS#8 key is a %T, want ECDSA", k)
		}
		key = ec
	default:
		return nil, fmt.Errorf("PEM block %q, want EC PRIVATE KEY or PRIVATE KEY", block.Type)
	}
	if key.Curve != elliptic.P384() {
		return nil, fmt.Errorf("the key is on %s, want P-384", key.Curve.Params().Name)
	}
	return key, nil
}

// Handshake is what one client handshake saw (filled in by the callbacks of Config).
type Handshake struct {
	mu sync.Mutex
	// Nonce is the client's nonce sent in ALPN.
	Nonce []byte
	// Evidence is the server's verified evidence.
	Evidence *sevsnp.Attestation
	// Signature says what of the report's signature and chain was verified.
	Signature string
	// ServerNonce is the server's nonce from the acceptable CAs (nil if no CertificateRequest).
	ServerNonce []byte
	// PresentedCertificate tells whether a client certificate was sent.
	PresentedCertificate bool
}

// Options configure a client.
type Options struct {
	// ExpectedHostData is the Coordinator policy hash the server's HOST_DATA must equal.
	ExpectedHostData []byte
	// OwnerKey, if set, is the key of the client certificate; without it no certificate is sent.
	OwnerKey crypto.Signer
	// Now gives the time for certificate checks (time.Now if nil).
	Now func() time.Time
	// VerifyReportSignature also checks the report's signature and certificate chain
	// (VerifyReportSignature).
	VerifyReportSignature bool
}

// Config returns the TLS configuration of one aTLS client connection with a fresh nonce, and
// the record of its handshake.
func Config(opts Options) (*tls.Config, *Handshake, error) {
	nonce, err := NewNonce()
	if err != nil {
		return nil, nil, err
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	hs := &Handshake{Nonce: nonce}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: NextProtos(nonce),
		// All verification is VerifyPeerCertificate's.
		InsecureSkipVerify: true, //nolint:gosec
		VerifyPeerCertificate: func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
			evidence, summary, err := VerifyServerCertificate(rawCerts, nonce, opts.ExpectedHostData, now(), opts.VerifyReportSignature)
			if err != nil {
				return err
			}
			hs.mu.Lock()
			hs.Evidence = evidence
			hs.Signature = summary
			hs.mu.Unlock()
			return nil
		},
		GetClientCertificate: func(info *tls.CertificateRequestInfo) (*tls.Certificate, error) {
			serverNonce, err := ServerNonce(info.AcceptableCAs)
			if err != nil {
				return nil, err
			}
			hs.mu.Lock()
			hs.ServerNonce = serverNonce
			hs.mu.Unlock()
			if opts.OwnerKey == nil {
				return &tls.Certificate{}, nil
			}
			cert, err := SelfSignedCertificate(opts.OwnerKey, now())
			if err != nil {
				return nil, err
			}
			hs.mu.Lock()
			hs.PresentedCertificate = true
			hs.mu.Unlock()
			return &cert, nil
		},
	}
	return cfg, hs, nil
}

// DescribeEvidence is a one-line summary of the evidence for logs.
func DescribeEvidence(a *sevsnp.Attestation) string {
	r := a.GetReport()
	var b strings.Builder
	fmt.Fprintf(&b, "SNP report v%d, vmpl %d, measurement %x, host_data %x", r.GetVersion(), r.GetVmpl(), r.GetMeasurement(), r.GetHostData())
	if p := a.GetProduct(); p != nil {
		fmt.Fprintf(&b, ", product %s", p.GetName())
	}
	if c := a.GetCertificateChain(); c != nil {
		fmt.Fprintf(&b, ", VCEK %d B, ASK %d B, ARK %d B, %d extras", len(c.GetVcekCert()), len(c.GetAskCert()), len(c.GetArkCert()), len(c.GetExtras()))
	} else {
		b.WriteString(", no certificate chain")
	}
	return b.String()
}
