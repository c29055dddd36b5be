package atls_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"contrast-rs/conformance/atls"
	"contrast-rs/conformance/atls/atlstest"
	"contrast-rs/conformance/sevsnp"
)

var coordinatorHash = sha256.Sum256([]byte("coordinator initdata"))

func ownerKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// handshake runs one client handshake against srv over loopback TCP and returns the client's
// record and error.
func handshake(t *testing.T, srv *atlstest.Server, opts atls.Options) (*atls.Handshake, *tls.ConnectionState, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		server := tls.Server(conn, srv.TLSConfig())
		_ = server.SetDeadline(time.Now().Add(10 * time.Second))
		if server.Handshake() == nil {
			// Complete a round trip so that the client sees a TLS 1.3 alert, if any.
			buf := make([]byte, 1)
			_, _ = server.Read(buf)
			_, _ = server.Write(buf)
		}
	}()
	cfg, hs, err := atls.Config(opts)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", ln.Addr().String(), cfg)
	if err != nil {
		<-done
		return hs, nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte{1}); err != nil {
		return hs, nil, err
	}
	if _, err := conn.Read(make([]byte, 1)); err != nil {
		return hs, nil, err
	}
	state := conn.ConnectionState()
	conn.Close()
	<-done
	return hs, &state, nil
}

func TestNextProtos(t *testing.T) {
	nonce, err := atls.NewNonce()
	if err != nil {
		t.Fatal(err)
	}
	protos := atls.NextProtos(nonce)
	if len(protos) != 2 || protos[1] != "h2" {
		t.Fatalf("protocols %q, want [atls:v1:nonce:<hex> h2]", protos)
	}
	if !regexp.MustCompile(`^atls:v1:nonce:[0-9a-f]{64}$`).MatchString(protos[0]) {
		t.Fatalf("nonce protocol %q", protos[0])
	}
	if protos[0] != "atls:v1:nonce:"+hex.EncodeToString(nonce) {
		t.Fatalf("nonce protocol %q does not carry the nonce", protos[0])
	}
	other, _ := atls.NewNonce()
	if bytes.Equal(nonce, other) {
		t.Fatal("two nonces are equal")
	}
}

func TestReportDataIsSHA512OfKeyAndNonce(t *testing.T) {
	spki, nonce := []byte("spki"), []byte("nonce")
	want := sha512.Sum512([]byte("spkinonce"))
	if got := atls.ReportData(spki, nonce); !bytes.Equal(got, want[:]) {
		t.Fatalf("%x != %x", got, want)
	}
}

func TestHandshakeAcceptsTheExpectedCoordinator(t *testing.T) {
	key := ownerKey(t)
	srv := &atlstest.Server{HostData: coordinatorHash[:]}
	hs, state, err := handshake(t, srv, atls.Options{ExpectedHostData: coordinatorHash[:], OwnerKey: key})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if state.NegotiatedProtocol != "h2" {
		t.Fatalf("negotiated %q", state.NegotiatedProtocol)
	}
	if hs.Evidence == nil || !bytes.Equal(hs.Evidence.GetReport().GetHostData(), coordinatorHash[:]) {
		t.Fatalf("evidence not recorded: %v", hs.Evidence)
	}
	if len(srv.Nonces) != 1 || !bytes.Equal(hs.ServerNonce, srv.Nonces[0]) {
		t.Fatalf("server nonce %x, server sent %x", hs.ServerNonce, srv.Nonces)
	}
	if !hs.PresentedCertificate || len(srv.ClientCerts) != 1 || srv.ClientCerts[0] == nil {
		t.Fatal("no client certificate presented")
	}
	cert, err := x509.ParseCertificate(srv.ClientCerts[0])
	if err != nil {
		t.Fatal(err)
	}
	want, _ := x509.MarshalPKIXPublicKey(key.Public())
	if !bytes.Equal(cert.RawSubjectPublicKeyInfo, want) {
		t.Fatal("the client certificate is not over the owner key")
	}
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		t.Fatalf("the client certificate is not self-signed: %v", err)
	}
	if cert.Subject.CommonName != "Contrast" || !bytes.Equal(cert.RawIssuer, cert.RawSubject) {
		t.Fatalf("subject %v issuer %v", cert.Subject, cert.Issuer)
	}
	for _, ext := range cert.Extensions {
		if ext.Id.Equal(atls.OIDRawSNPReport) {
			t.Fatal("the client certificate carries evidence")
		}
	}
}

func TestHandshakeWithoutOwnerKeySendsNoCertificate(t *testing.T) {
	srv := &atlstest.Server{HostData: coordinatorHash[:]}
	hs, _, err := handshake(t, srv, atls.Options{ExpectedHostData: coordinatorHash[:]})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if hs.PresentedCertificate || len(srv.ClientCerts) != 1 || srv.ClientCerts[0] != nil {
		t.Fatal("a client certificate was presented without an owner key")
	}
	if hs.ServerNonce == nil {
		t.Fatal("the server nonce was not read")
	}
}

func TestHandshakeRefusesOtherHostData(t *testing.T) {
	other := sha256.Sum256([]byte("a workload's initdata"))
	srv := &atlstest.Server{HostData: other[:]}
	_, _, err := handshake(t, srv, atls.Options{ExpectedHostData: coordinatorHash[:]})
	var mismatch *atls.HostDataMismatchError
	if !errors.As(err, &mismatch) {
		t.Fatalf("err = %v, want a HostDataMismatchError", err)
	}
	if !bytes.Equal(mismatch.Got, other[:]) || !bytes.Equal(mismatch.Want, coordinatorHash[:]) {
		t.Fatalf("mismatch %x / %x", mismatch.Got, mismatch.Want)
	}
}

func TestHandshakeRefusals(t *testing.T) {
	cases := map[string]struct {
		srv  *atlstest.Server
		want string
	}{
		"report data not bound to the nonce": {&atlstest.Server{WrongReportData: true}, "REPORT_DATA"},
		"no extension":                       {&atlstest.Server{NoExtension: true}, "no SEV-SNP attestation extension"},
		"not a protobuf":                     {&atlstest.Server{Garbage: true}, "not a sevsnp.Attestation"},
		"expired":                            {&atlstest.Server{NotBefore: time.Now().Add(-3 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}, "not valid now"},
		"not yet valid":                      {&atlstest.Server{NotBefore: time.Now().Add(time.Hour), NotAfter: time.Now().Add(3 * time.Hour)}, "not valid now"},
		"signed by another key":              {&atlstest.Server{SignedByOtherKey: true}, "not signed by its own key"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			c.srv.HostData = coordinatorHash[:]
			_, _, err := handshake(t, c.srv, atls.Options{ExpectedHostData: coordinatorHash[:]})
			var verr *atls.VerificationError
			if !errors.As(err, &verr) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want a VerificationError with %q", err, c.want)
			}
			var mismatch *atls.HostDataMismatchError
			if errors.As(err, &mismatch) {
				t.Fatal("reported as a HOST_DATA mismatch")
			}
		})
	}
}

func TestHandshakeRefusesBadServerNonce(t *testing.T) {
	ca := func(cn string) *x509.Certificate {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: bigOne(), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		cert, _ := x509.ParseCertificate(der)
		return cert
	}
	cases := map[string]func(nonce []byte) []*x509.Certificate{
		"two CAs": func(nonce []byte) []*x509.Certificate {
			a, _ := atlstest.NonceCA(nonce)
			b, _ := atlstest.NonceCA(nonce[:16])
			return []*x509.Certificate{a, b}
		},
		"not base64": func([]byte) []*x509.Certificate { return []*x509.Certificate{ca("not base64!")} },
		"short nonce": func(nonce []byte) []*x509.Certificate {
			c, _ := atlstest.NonceCA(nonce[:16])
			return []*x509.Certificate{c}
		},
		"no CA at all": func([]byte) []*x509.Certificate { return nil },
	}
	for name, cas := range cases {
		t.Run(name, func(t *testing.T) {
			srv := &atlstest.Server{HostData: coordinatorHash[:], CAs: cas}
			_, _, err := handshake(t, srv, atls.Options{ExpectedHostData: coordinatorHash[:], OwnerKey: ownerKey(t)})
			var verr *atls.VerificationError
			if !errors.As(err, &verr) {
				t.Fatalf("err = %v, want a VerificationError", err)
			}
		})
	}
}

func TestServerNonceParsesOneCommonName(t *testing.T) {
	nonce, _ := atls.NewNonce()
	ca, err := atlstest.NonceCA(nonce)
	if err != nil {
		t.Fatal(err)
	}
	got, err := atls.ServerNonce([][]byte{ca.RawSubject})
	if err != nil || !bytes.Equal(got, nonce) {
		t.Fatalf("got %x, %v; want %x", got, err, nonce)
	}
	if _, err := atls.ServerNonce([][]byte{ca.RawSubject, ca.RawSubject}); err == nil {
		t.Fatal("two CAs accepted")
	}
	if _, err := atls.ServerNonce([][]byte{append(append([]byte{}, ca.RawSubject...), 0)}); err == nil {
		t.Fatal("trailing bytes accepted")
	}
	noCN, _ := asn1.Marshal(pkix.Name{Organization: []string{"x"}}.ToRDNSequence())
	if _, err := atls.ServerNonce([][]byte{noCN}); err == nil {
		t.Fatal("a DN without CN accepted")
	}
}

func TestVerifyServerCertificateDirectly(t *testing.T) {
	if _, _, err := atls.VerifyServerCertificate(nil, nil, nil, time.Now(), false); err == nil {
		t.Fatal("no certificate accepted")
	}
	if _, _, err := atls.VerifyServerCertificate([][]byte{{1, 2, 3}}, nil, nil, time.Now(), false); err == nil {
		t.Fatal("garbage accepted")
	}
}

func TestLoadOwnerKey(t *testing.T) {
	key := ownerKey(t)
	sec1, _ := x509.MarshalECPrivateKey(key)
	got, err := atls.LoadOwnerKey(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}))
	if err != nil || !got.Equal(key) {
		t.Fatalf("SEC1: %v", err)
	}
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(key)
	got, err = atls.LoadOwnerKey(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}))
	if err != nil || !got.Equal(key) {
		t.Fatalf("PKCS#8: %v", err)
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sec1, _ = x509.MarshalECPrivateKey(p256)
	if _, err := atls.LoadOwnerKey(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})); err == nil {
		t.Fatal("a P-256 key accepted")
	}
	if _, err := atls.LoadOwnerKey([]byte("no pem")); err == nil {
		t.Fatal("not PEM accepted")
	}
}

func TestGRPCCredentialsRunATLS(t *testing.T) {
	srv := &atlstest.Server{HostData: coordinatorHash[:]}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				s := tls.Server(conn, srv.TLSConfig())
				_ = s.Handshake()
				_, _ = s.Read(make([]byte, 1))
			}()
		}
	}()
	creds := atls.NewCredentials(atls.Options{ExpectedHostData: coordinatorHash[:]})
	for i := 0; i < 2; i++ {
		raw, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conn, _, err := creds.ClientHandshake(context.Background(), ln.Addr().String(), raw)
		if err != nil {
			t.Fatalf("handshake %d: %v", i, err)
		}
		conn.Close()
	}
	hs := creds.Handshakes()
	if len(hs) != 2 || bytes.Equal(hs[0].Nonce, hs[1].Nonce) {
		t.Fatal("want two handshakes with different nonces")
	}
}

func bigOne() *big.Int { return big.NewInt(1) }

func TestCpuid1Eax(t *testing.T) {
	// go-sev-guest's values: Milan B1, Genoa, Turin.
	for _, c := range []struct {
		f, m, s byte
		eax     uint32
	}{{0x19, 0x01, 0x1, 0x00A00F11}, {0x19, 0x11, 0x1, 0x00A10F11}, {0x1A, 0x02, 0x0, 0x00B00F20}} {
		if got := atls.Cpuid1Eax(c.f, c.m, c.s); got != c.eax {
			t.Fatalf("Cpuid1Eax(%#x, %#x, %#x) = %#x, want %#x", c.f, c.m, c.s, got, c.eax)
		}
	}
}

func TestReportBytesLayout(t *testing.T) {
	r := &sevsnp.Report{
		Version: 3, Policy: 0x30000, FamilyId: make([]byte, 16), ImageId: make([]byte, 16),
		ReportData: bytes.Repeat([]byte{0xaa}, 64), Measurement: bytes.Repeat([]byte{0xbb}, 48),
		HostData: bytes.Repeat([]byte{0xcc}, 32), IdKeyDigest: make([]byte, 48), AuthorKeyDigest: make([]byte, 48),
		ReportId: make([]byte, 32), ReportIdMa: make([]byte, 32), ChipId: bytes.Repeat([]byte{0xdd}, 64),
		CurrentMajor: 1, CommittedMinor: 55, Cpuid1EaxFms: 0x00A00F11, Signature: make([]byte, 512),
	}
	raw, err := atls.ReportBytes(r)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		off  int
		want []byte
	}{
		{0x000, []byte{3, 0, 0, 0}}, {0x008, []byte{0, 0, 3, 0}}, {0x050, []byte{0xaa}}, {0x08F, []byte{0xaa, 0xbb}},
		{0x0BF, []byte{0xbb, 0xcc}}, {0x0DF, []byte{0xcc, 0}}, {0x188, []byte{0x19, 0x01, 0x01}},
		{0x1A0, []byte{0xdd}}, {0x1DF, []byte{0xdd, 0}}, {0x1EA, []byte{1}}, {0x1ED, []byte{55}},
	}
	for _, c := range checks {
		if got := raw[c.off : c.off+len(c.want)]; !bytes.Equal(got, c.want) {
			t.Errorf("at %#x: % x, want % x", c.off, got, c.want)
		}
	}
	if len(raw) != 1184 {
		t.Fatalf("%d bytes", len(raw))
	}
	r.ChipId = r.ChipId[:63]
	if _, err := atls.ReportBytes(r); err == nil {
		t.Fatal("a 63-byte chip_id accepted")
	}
	r.ChipId, r.Version = make([]byte, 64), 2
	if _, err := atls.ReportBytes(r); err == nil {
		t.Fatal("cpuid1eax_fms accepted in a version-2 report")
	}
}

func TestHandshakeVerifiesTheReportSignature(t *testing.T) {
	opts := atls.Options{ExpectedHostData: coordinatorHash[:], VerifyReportSignature: true}
	hs, _, err := handshake(t, &atlstest.Server{HostData: coordinatorHash[:], Sign: true}, opts)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if !strings.Contains(hs.Signature, "verifies with the VCEK, signed by the ASK, signed by the self-signed ARK") {
		t.Fatalf("summary %q", hs.Signature)
	}
	cases := map[string]struct {
		srv  *atlstest.Server
		want string
	}{
		"no VCEK":                {&atlstest.Server{}, "no VCEK certificate"},
		"tampered after signing": {&atlstest.Server{Sign: true, TamperAfterSigning: true}, "does not verify"},
		"VCEK not from the ASK":  {&atlstest.Server{Sign: true, BreakChain: true}, "not signed by the ASK"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			c.srv.HostData = coordinatorHash[:]
			_, _, err := handshake(t, c.srv, opts)
			var verr *atls.VerificationError
			if !errors.As(err, &verr) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
	// The signature is checked before HOST_DATA: a refusal for HOST_DATA means it verified.
	other := sha256.Sum256([]byte("other"))
	_, _, err = handshake(t, &atlstest.Server{HostData: other[:], Sign: true, TamperAfterSigning: true}, opts)
	var mismatch *atls.HostDataMismatchError
	if err == nil || errors.As(err, &mismatch) {
		t.Fatalf("err = %v, want a signature refusal before HOST_DATA", err)
	}
}
