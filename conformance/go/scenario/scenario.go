// Package scenario drives a Coordinator's UserAPI (gRPC over aTLS) and checks its answers
// against upstream Contrast's wire protocol (shared/reference/contrast-wire.md §1, §3).
package scenario

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"contrast-rs/conformance/atls"
	"contrast-rs/conformance/codec"
	"contrast-rs/conformance/userapi"
)

// Config is what a scenario needs.
type Config struct {
	// Addr is the Coordinator's UserAPI, host:port.
	Addr string
	// Manifest is the manifest, as sent (JSON bytes).
	Manifest []byte
	// Policies are the policy (initdata) documents, as sent.
	Policies [][]byte
	// ExpectedHostData is the Coordinator policy hash (32 bytes).
	ExpectedHostData []byte
	// OwnerKey is the workload-owner key of the client certificate (nil: none).
	OwnerKey crypto.Signer
	// SeedshareOwnerKey, if set, decrypts the seed share for its public key.
	SeedshareOwnerKey *rsa.PrivateKey
	// VerifyReportSignature checks the report's signature and chain in every handshake
	// (atls.VerifyReportSignature).
	VerifyReportSignature bool
	// Timeout bounds waiting for the Coordinator to accept connections and each call.
	Timeout time.Duration
	// Log gets one line per step.
	Log io.Writer

	// listening: the Coordinator accepted a connection already (no more waiting).
	listening bool
}

// Failure is a conformance failure: the Coordinator answered, but not as upstream would.
type Failure struct{ Msg string }

func (f *Failure) Error() string { return f.Msg }

func failf(format string, args ...interface{}) error {
	return &Failure{Msg: fmt.Sprintf(format, args...)}
}

func (c *Config) logf(format string, args ...interface{}) {
	if c.Log != nil {
		fmt.Fprintf(c.Log, format+"\n", args...)
	}
}

// manifestFields are the parts of the manifest JSON the checks need.
type manifestFields struct {
	Policies map[string]struct {
		Role string `json:"Role"`
	} `json:"Policies"`
	SeedshareOwnerPubKeys []string `json:"SeedshareOwnerPubKeys"`
}

func parseManifest(manifest []byte) (*manifestFields, error) {
	var m manifestFields
	if err := json.Unmarshal(manifest, &m); err != nil {
		return nil, fmt.Errorf("the manifest is not JSON: %w", err)
	}
	return &m, nil
}

// CoordinatorPolicyHash returns the manifest's policy key whose Role is "coordinator".
func CoordinatorPolicyHash(manifest []byte) (string, error) {
	m, err := parseManifest(manifest)
	if err != nil {
		return "", err
	}
	var found []string
	for hash, entry := range m.Policies {
		if entry.Role == "coordinator" {
			found = append(found, hash)
		}
	}
	if len(found) != 1 {
		return "", fmt.Errorf("the manifest has %d policies with Role coordinator, want 1", len(found))
	}
	return found[0], nil
}

func policyHash(policy []byte) string {
	sum := sha256.Sum256(policy)
	return hex.EncodeToString(sum[:])
}

// policySet is the sorted SHA-256 hex digests of policies, with duplicates.
func policySet(policies [][]byte) []string {
	out := make([]string, 0, len(policies))
	for _, p := range policies {
		out = append(out, policyHash(p))
	}
	sort.Strings(out)
	return out
}

// dial opens a gRPC connection whose handshake is the aTLS client's; it waits (until the
// timeout) while the Coordinator is not listening yet.
func (c *Config) dial(ctx context.Context) (*grpc.ClientConn, *atls.Credentials, error) {
	return c.dialAs(ctx, c.OwnerKey)
}

// dialAs is dial with key (nil: none) for the client certificate instead of the owner key.
func (c *Config) dialAs(ctx context.Context, key crypto.Signer) (*grpc.ClientConn, *atls.Credentials, error) {
	if !c.listening {
		if err := waitListening(ctx, c.Addr, c.Timeout); err != nil {
			return nil, nil, err
		}
		c.listening = true
	}
	creds := atls.NewCredentials(atls.Options{ExpectedHostData: c.ExpectedHostData, OwnerKey: key, VerifyReportSignature: c.VerifyReportSignature})
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	conn, err := grpc.DialContext(ctx, c.Addr,
		grpc.WithTransportCredentials(creds),
		grpc.WithBlock(),
		grpc.FailOnNonTempDialError(true),
		grpc.WithReturnConnectionError(),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(codec.Codec{})),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to %s over aTLS: %w", c.Addr, err)
	}
	hs := creds.Handshakes()
	if len(hs) == 0 {
		conn.Close()
		return nil, nil, errors.New("connected without an aTLS handshake")
	}
	last := hs[len(hs)-1]
	c.logf("  aTLS handshake ok: %s", atls.DescribeEvidence(last.Evidence))
	c.logf("  %s", last.Signature)
	c.logf("  server nonce received (%d bytes); client certificate presented: %v", len(last.ServerNonce), last.PresentedCertificate)
	return conn, creds, nil
}

func describeStatus(err error) string {
	if s, ok := status.FromError(err); ok {
		return fmt.Sprintf("gRPC status %s: %s", s.Code(), s.Message())
	}
	return err.Error()
}

// SetAndVerify sets the manifest at an uninitialised Coordinator and checks SetManifest's and
// GetManifests' answers.
func SetAndVerify(ctx context.Context, c *Config) error {
	m, err := parseManifest(c.Manifest)
	if err != nil {
		return err
	}
	for _, p := range c.Policies {
		if _, ok := m.Policies[policyHash(p)]; !ok {
			return fmt.Errorf("input: policy with SHA-256 %s is not in the manifest's Policies", policyHash(p))
		}
	}

	c.logf("step: connect to %s (aTLS, expected HOST_DATA %x)", c.Addr, c.ExpectedHostData)
	conn, _, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	client := userapi.NewUserAPIClient(conn)

	c.logf("step: SetManifest (%d-byte manifest, %d policies)", len(c.Manifest), len(c.Policies))
	callCtx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	set, err := client.SetManifest(callCtx, &userapi.SetManifestRequest{Manifest: c.Manifest, Policies: c.Policies})
	if err != nil {
		return failf("SetManifest failed: %s", describeStatus(err))
	}
	if err := checkCA("SetManifestResponse.RootCA", set.GetRootCA()); err != nil {
		return err
	}
	if err := checkCA("SetManifestResponse.MeshCA", set.GetMeshCA()); err != nil {
		return err
	}
	c.logf("  ok: RootCA and MeshCA are PEM self-signed CA certificates")
	if err := c.checkSeedShares(m, set.GetSeedSharesDoc()); err != nil {
		return err
	}

	c.logf("step: GetManifests (new connection, fresh nonce)")
	conn2, _, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer conn2.Close()
	callCtx2, cancel2 := context.WithTimeout(ctx, c.Timeout)
	defer cancel2()
	got, err := userapi.NewUserAPIClient(conn2).GetManifests(callCtx2, &userapi.GetManifestsRequest{})
	if err != nil {
		return failf("GetManifests failed: %s", describeStatus(err))
	}
	if n := len(got.GetManifests()); n != 1 || !bytes.Equal(got.GetManifests()[0], c.Manifest) {
		return failf("GetManifests: the history has %d manifests, want exactly [the manifest that was set]", n)
	}
	c.logf("  ok: Manifests == [the manifest bytes]")
	if sent, answered := policySet(c.Policies), policySet(got.GetPolicies()); strings.Join(sent, ",") != strings.Join(answered, ",") {
		return failf("GetManifests: the policies (by SHA-256) are %v, want what was sent: %v", answered, sent)
	}
	c.logf("  ok: Policies == the %d policies sent", len(c.Policies))
	if !bytes.Equal(got.GetRootCA(), set.GetRootCA()) {
		return failf("GetManifests: RootCA differs from SetManifest's")
	}
	if !bytes.Equal(got.GetMeshCA(), set.GetMeshCA()) {
		return failf("GetManifests: MeshCA differs from SetManifest's")
	}
	c.logf("  ok: RootCA and MeshCA equal SetManifest's")
	lt := got.GetLatestTransition()
	if lt == nil {
		return failf("GetManifests: no LatestTransition")
	}
	want := TransitionHash(c.Manifest, make([]byte, 32))
	if !bytes.Equal(lt.GetTransitionHash(), want) {
		return failf("GetManifests: LatestTransition.TransitionHash is %x, want SHA-256(SHA-256(manifest) ‖ 32 zero bytes) = %x", lt.GetTransitionHash(), want)
	}
	c.logf("  ok: LatestTransition.TransitionHash == SHA-256(SHA-256(manifest) ‖ 0^32) = %x", want)
	var sig struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(lt.GetSignature(), &sig); err != nil || len(rest) != 0 {
		return failf("GetManifests: LatestTransition.Signature is not a DER ECDSA signature (%d bytes)", len(lt.GetSignature()))
	}
	c.logf("  ok: LatestTransition.Signature is a DER ECDSA signature (not verified: the signing key is seed-derived)")
	return nil
}

// TransitionHash is SHA-256(SHA-256(manifest) ‖ previous).
func TransitionHash(manifest, previous []byte) []byte {
	mh := sha256.Sum256(manifest)
	th := sha256.Sum256(append(mh[:], previous...))
	return th[:]
}

// parsePEMCert parses a PEM certificate that checkCA accepted.
func parsePEMCert(pemBytes []byte) *x509.Certificate {
	block, _ := pem.Decode(pemBytes)
	cert, _ := x509.ParseCertificate(block.Bytes)
	return cert
}

func checkCA(name string, pemBytes []byte) error {
	block, rest := pem.Decode(pemBytes)
	if block == nil || block.Type != "CERTIFICATE" {
		return failf("%s is not a PEM CERTIFICATE", name)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return failf("%s has data after its PEM certificate", name)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return failf("%s does not parse: %v", name, err)
	}
	if !cert.IsCA {
		return failf("%s (%s) is not a CA certificate", name, cert.Subject)
	}
	if err := cert.CheckSignatureFrom(cert); err != nil {
		return failf("%s (%s) is not self-signed: %v", name, cert.Subject, err)
	}
	return nil
}

func (c *Config) checkSeedShares(m *manifestFields, doc *userapi.SeedShareDocument) error {
	if len(m.SeedshareOwnerPubKeys) == 0 {
		c.logf("  (the manifest has no seed-share owners; SeedSharesDoc not checked)")
		return nil
	}
	if doc == nil {
		return failf("SetManifest: no SeedSharesDoc, but the manifest has %d seed-share owners", len(m.SeedshareOwnerPubKeys))
	}
	if len(doc.GetSalt()) != 32 {
		return failf("SeedSharesDoc.salt has %d bytes, want 32", len(doc.GetSalt()))
	}
	owners := map[string]bool{}
	for _, k := range m.SeedshareOwnerPubKeys {
		owners[k] = true
	}
	if len(doc.GetSeedShares()) != len(owners) {
		return failf("SeedSharesDoc has %d shares, want one per seed-share owner (%d)", len(doc.GetSeedShares()), len(owners))
	}
	decrypted := false
	for _, share := range doc.GetSeedShares() {
		if !owners[share.GetPublicKey()] {
			return failf("SeedSharesDoc has a share for %.16s…, which is not a seed-share owner key of the manifest", share.GetPublicKey())
		}
		delete(owners, share.GetPublicKey())
		der, err := hex.DecodeString(share.GetPublicKey())
		if err != nil {
			return failf("SeedShare.PublicKey is not hex")
		}
		pub, err := x509.ParsePKCS1PublicKey(der)
		if err != nil {
			return failf("SeedShare.PublicKey is not a PKCS#1 RSA public key: %v", err)
		}
		if len(share.GetEncryptedSeed()) != pub.Size() {
			return failf("SeedShare.EncryptedSeed has %d bytes, want the RSA modulus size %d", len(share.GetEncryptedSeed()), pub.Size())
		}
		if c.SeedshareOwnerKey != nil && c.SeedshareOwnerKey.PublicKey.Equal(pub) {
			seed, err := rsa.DecryptOAEP(sha256.New(), nil, c.SeedshareOwnerKey, share.GetEncryptedSeed(), []byte("seedshare"))
			if err != nil {
				return failf("the seed share does not decrypt with RSA-OAEP(SHA-256, label \"seedshare\"): %v", err)
			}
			if len(seed) != 64 {
				return failf("the decrypted seed has %d bytes, want 64", len(seed))
			}
			decrypted = true
		}
	}
	c.logf("  ok: SeedSharesDoc: one share per seed-share owner (%d), 32-byte salt", len(doc.GetSeedShares()))
	if c.SeedshareOwnerKey != nil {
		if !decrypted {
			return failf("no seed share for the given seed-share owner key")
		}
		c.logf("  ok: the seed share decrypts (RSA-OAEP SHA-256, label \"seedshare\") to 64 bytes")
	}
	return nil
}

// ExpectRefused connects with the aTLS client and succeeds only if the handshake is refused
// because the server's HOST_DATA is not the expected one (the evidence otherwise verifies:
// certificate, extension, protobuf and report data are checked first).
func ExpectRefused(ctx context.Context, c *Config) error {
	c.logf("step: aTLS handshake with %s, expecting a refusal for HOST_DATA (expected %x)", c.Addr, c.ExpectedHostData)
	deadline := time.Now().Add(c.Timeout)
	for {
		err := handshakeOnce(ctx, c)
		var mismatch *atls.HostDataMismatchError
		switch {
		case errors.As(err, &mismatch):
			c.logf("  ok: refused: %v", err)
			return nil
		case err == nil:
			return failf("the handshake succeeded: the client accepted a Coordinator it should refuse")
		case isNotListening(err) && time.Now().Before(deadline):
			time.Sleep(200 * time.Millisecond)
			continue
		default:
			return failf("the handshake failed, but not because of HOST_DATA: %v", err)
		}
	}
}

func handshakeOnce(ctx context.Context, c *Config) error {
	cfg, _, err := atls.Config(atls.Options{ExpectedHostData: c.ExpectedHostData, OwnerKey: c.OwnerKey, VerifyReportSignature: c.VerifyReportSignature})
	if err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(c.Addr)
	if err == nil {
		cfg.ServerName = host
	}
	dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: cfg}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := dialer.DialContext(ctx, "tcp", c.Addr)
	if err != nil {
		return err
	}
	return conn.Close()
}

// waitListening waits until addr accepts TCP connections (a Coordinator that is starting), at
// most timeout. grpc-go fails at once on "connection refused" with FailOnNonTempDialError.
func waitListening(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		d := net.Dialer{Timeout: 5 * time.Second}
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			return conn.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not accept connections after %v: %w", addr, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func isNotListening(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
