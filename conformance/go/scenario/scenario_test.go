package scenario

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"contrast-rs/conformance/atls/atlstest"
	"contrast-rs/conformance/userapi"
)

// fakeCoordinator is a Go UserAPI with upstream's semantics for a first SetManifest and
// GetManifests, over the aTLS test server. Its flaws are switched on by the test.
type fakeCoordinator struct {
	userapi.UnimplementedUserAPIServer
	rootCA, meshCA []byte
	signingKey     *ecdsa.PrivateKey
	// Flaws.
	wrongPrevious bool
	dropPolicy    bool
	noAuth        bool // anyone may update
	changeRootKey bool // a new root key on update
	rootKey       *ecdsa.PrivateKey

	mu       sync.Mutex
	manifest []byte // the latest
	history  [][]byte
	policies [][]byte
}

// authorized is upstream's check for updates: the PKIX DER of the client certificate's key,
// hex, is one of the current manifest's WorkloadOwnerPubKeys.
func (f *fakeCoordinator) authorized(ctx context.Context) error {
	var current struct{ WorkloadOwnerPubKeys []string }
	if err := json.Unmarshal(f.manifest, &current); err != nil {
		return status.Errorf(codes.Internal, "%v", err)
	}
	p, ok := peer.FromContext(ctx)
	if !ok {
		return status.Error(codes.PermissionDenied, "validating peer: no peer")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return status.Error(codes.PermissionDenied, "validating peer: no peer certificates found")
	}
	der, err := x509.MarshalPKIXPublicKey(info.State.PeerCertificates[0].PublicKey)
	if err != nil {
		return status.Errorf(codes.PermissionDenied, "validating peer: %v", err)
	}
	for _, k := range current.WorkloadOwnerPubKeys {
		if k == hex.EncodeToString(der) {
			return nil
		}
	}
	return status.Error(codes.PermissionDenied, "validating peer: peer not authorized")
}

func caPEM(t *testing.T, cn string) []byte {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	return caPEMWithKey(t, cn, key)
}

func caPEMWithKey(t *testing.T, cn string, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// reissue is the root certificate with a new serial, same subject and key (as upstream's CA
// is rebuilt on every SetManifest from the seed-derived root key).
func (f *fakeCoordinator) reissue(rootPEM []byte) []byte {
	block, _ := pem.Decode(rootPEM)
	cert, _ := x509.ParseCertificate(block.Bytes)
	if f.changeRootKey {
		key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		f.rootKey = key
	}
	cert.SerialNumber = big.NewInt(time.Now().UnixNano())
	cert.PublicKey = f.rootKey.Public()
	der, err := x509.CreateCertificate(rand.Reader, cert, cert, f.rootKey.Public(), f.rootKey)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func (f *fakeCoordinator) SetManifest(ctx context.Context, req *userapi.SetManifestRequest) (*userapi.SetManifestResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var m manifestFields
	if err := json.Unmarshal(req.GetManifest(), &m); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "unmarshaling manifest: %v", err)
	}
	update := f.manifest != nil
	if update && !f.noAuth {
		if err := f.authorized(ctx); err != nil {
			return nil, err
		}
	}
	f.manifest, f.policies = req.GetManifest(), req.GetPolicies()
	f.history = append(f.history, f.manifest)
	if update {
		f.rootCA = f.reissue(f.rootCA)
		return &userapi.SetManifestResponse{RootCA: f.rootCA, MeshCA: f.meshCA}, nil
	}
	doc := &userapi.SeedShareDocument{Salt: make([]byte, 32)}
	seed := make([]byte, 64)
	for _, k := range m.SeedshareOwnerPubKeys {
		der, _ := hex.DecodeString(k)
		pub, err := x509.ParsePKCS1PublicKey(der)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "initializing seed engine: %v", err)
		}
		enc, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, seed, []byte("seedshare"))
		if err != nil {
			return nil, status.Errorf(codes.Internal, "%v", err)
		}
		doc.SeedShares = append(doc.SeedShares, &userapi.SeedShare{PublicKey: k, EncryptedSeed: enc})
	}
	return &userapi.SetManifestResponse{RootCA: f.rootCA, MeshCA: f.meshCA, SeedSharesDoc: doc}, nil
}

func (f *fakeCoordinator) GetManifests(context.Context, *userapi.GetManifestsRequest) (*userapi.GetManifestsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.manifest == nil {
		return nil, status.Error(codes.FailedPrecondition, "no manifest configured")
	}
	th := make([]byte, 32)
	if f.wrongPrevious {
		th[0] = 1
	}
	for _, m := range f.history {
		th = TransitionHash(m, th)
	}
	sig, err := ecdsa.SignASN1(rand.Reader, f.signingKey, th)
	if err != nil {
		return nil, err
	}
	policies := f.policies
	if f.dropPolicy {
		policies = policies[1:]
	}
	return &userapi.GetManifestsResponse{
		Manifests: f.history, Policies: policies, RootCA: f.rootCA, MeshCA: f.meshCA,
		LatestTransition: &userapi.LatestTransition{TransitionHash: th, Signature: sig},
	}, nil
}

type fixture struct {
	cfg   *Config
	fake  *fakeCoordinator
	atls  *atlstest.Server
	close func()
}

func newFixture(t *testing.T, hostData []byte) *fixture {
	t.Helper()
	seedKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	owner, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ownerPKIX, _ := x509.MarshalPKIXPublicKey(owner.Public())
	coordinatorPolicy := []byte("[data]\n\"policy.rego\" = \"coordinator\"\n")
	workloadPolicy := []byte("[data]\n\"policy.rego\" = \"web\"\n")
	manifest, _ := json.Marshal(map[string]interface{}{
		"Policies": map[string]interface{}{
			policyHash(coordinatorPolicy): map[string]interface{}{"SANs": []string{"*"}, "WorkloadSecretID": "coordinator", "Role": "coordinator"},
			policyHash(workloadPolicy):    map[string]interface{}{"SANs": []string{"web"}, "WorkloadSecretID": "web"},
		},
		"SeedshareOwnerPubKeys": []string{hex.EncodeToString(x509.MarshalPKCS1PublicKey(&seedKey.PublicKey))},
		"WorkloadOwnerPubKeys":  []string{hex.EncodeToString(ownerPKIX)},
	})
	expected, _ := hex.DecodeString(policyHash(coordinatorPolicy))
	if hostData == nil {
		hostData = expected
	}
	signingKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rootKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	fake := &fakeCoordinator{rootKey: rootKey, rootCA: caPEMWithKey(t, "system:coordinator:root", rootKey), meshCA: caPEM(t, "system:coordinator:intermediate"), signingKey: signingKey}
	srv := &atlstest.Server{HostData: hostData, Sign: true}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(srv.TLSConfig())))
	userapi.RegisterUserAPIServer(gs, fake)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(ln) }()
	var log bytes.Buffer
	cfg := &Config{
		Addr: ln.Addr().String(), Manifest: manifest, Policies: [][]byte{coordinatorPolicy, workloadPolicy},
		ExpectedHostData: expected, OwnerKey: owner, SeedshareOwnerKey: seedKey, Timeout: 10 * time.Second, Log: &log,
		VerifyReportSignature: true,
	}
	t.Cleanup(func() {
		gs.Stop()
		if t.Failed() {
			t.Log(log.String())
		}
	})
	return &fixture{cfg: cfg, fake: fake, atls: srv, close: gs.Stop}
}

func TestSetAndVerifyAgainstAConformingServer(t *testing.T) {
	f := newFixture(t, nil)
	if err := SetAndVerify(context.Background(), f.cfg); err != nil {
		t.Fatalf("SetAndVerify: %v", err)
	}
	// Two connections, each with a client certificate and its own server nonce.
	if len(f.atls.ClientCerts) != 2 || f.atls.ClientCerts[0] == nil || bytes.Equal(f.atls.Nonces[0], f.atls.Nonces[1]) {
		t.Fatalf("client certs %d, nonces %x", len(f.atls.ClientCerts), f.atls.Nonces)
	}
	hash, err := CoordinatorPolicyHash(f.cfg.Manifest)
	if err != nil || hash != hex.EncodeToString(f.cfg.ExpectedHostData) {
		t.Fatalf("CoordinatorPolicyHash = %s, %v", hash, err)
	}
}

func TestSetAndVerifyFindsFlaws(t *testing.T) {
	cases := map[string]struct {
		flaw func(*fakeCoordinator)
		want string
	}{
		"transition hash": {func(f *fakeCoordinator) { f.wrongPrevious = true }, "TransitionHash"},
		"policies":        {func(f *fakeCoordinator) { f.dropPolicy = true }, "policies"},
		"mesh CA":         {func(f *fakeCoordinator) { f.meshCA = []byte("not pem") }, "MeshCA"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, nil)
			c.flaw(f.fake)
			err := SetAndVerify(context.Background(), f.cfg)
			var failure *Failure
			if !errors.As(err, &failure) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want a Failure about %s", err, c.want)
			}
		})
	}
}

func TestSetAndVerifyRefusesOtherHostData(t *testing.T) {
	f := newFixture(t, make([]byte, 32))
	f.cfg.Timeout = 3 * time.Second
	err := SetAndVerify(context.Background(), f.cfg)
	if err == nil || !strings.Contains(err.Error(), "HOST_DATA") {
		t.Fatalf("err = %v, want a HOST_DATA refusal", err)
	}
	if f.fake.manifest != nil {
		t.Fatal("the manifest reached a Coordinator that was refused")
	}
}

func TestExpectRefused(t *testing.T) {
	other := newFixture(t, make([]byte, 32))
	if err := ExpectRefused(context.Background(), other.cfg); err != nil {
		t.Fatalf("ExpectRefused against another HOST_DATA: %v", err)
	}
	same := newFixture(t, nil)
	if err := ExpectRefused(context.Background(), same.cfg); err == nil {
		t.Fatal("ExpectRefused passed against the expected Coordinator")
	}
	broken := newFixture(t, make([]byte, 32))
	broken.atls.WrongReportData = true
	if err := ExpectRefused(context.Background(), broken.cfg); err == nil || !strings.Contains(err.Error(), "not because of HOST_DATA") {
		t.Fatalf("ExpectRefused with unbound evidence: %v", err)
	}
}

func TestExpectRefusedWaitsForTheListener(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	cfg := &Config{Addr: addr, ExpectedHostData: make([]byte, 32), Timeout: 500 * time.Millisecond}
	start := time.Now()
	err := ExpectRefused(context.Background(), cfg)
	if err == nil || time.Since(start) < 400*time.Millisecond {
		t.Fatalf("err = %v after %v", err, time.Since(start))
	}
}

func TestSetAndVerifyWaitsForTheListener(t *testing.T) {
	f := newFixture(t, nil)
	f.close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	f.cfg.Addr = addr
	f.cfg.Timeout = 800 * time.Millisecond
	start := time.Now()
	err = SetAndVerify(context.Background(), f.cfg)
	if err == nil || !strings.Contains(err.Error(), "does not accept connections") || time.Since(start) < 700*time.Millisecond {
		t.Fatalf("err = %v after %v", err, time.Since(start))
	}
}

func TestUpdateAndVerify(t *testing.T) {
	f := newFixture(t, nil)
	if err := UpdateAndVerify(context.Background(), f.cfg); err == nil {
		t.Fatal("UpdateAndVerify passed on a Coordinator without a manifest")
	}
	if err := SetAndVerify(context.Background(), f.cfg); err != nil {
		t.Fatalf("SetAndVerify: %v", err)
	}
	if err := UpdateAndVerify(context.Background(), f.cfg); err != nil {
		t.Fatalf("UpdateAndVerify: %v", err)
	}
	if len(f.fake.history) != 2 || !strings.Contains(string(f.fake.history[1]), UpdateSAN) {
		t.Fatalf("history %q", f.fake.history)
	}
}

func TestUpdateAndVerifyFindsAnUnauthorizedUpdate(t *testing.T) {
	f := newFixture(t, nil)
	if err := SetAndVerify(context.Background(), f.cfg); err != nil {
		t.Fatalf("SetAndVerify: %v", err)
	}
	f.fake.noAuth = true
	err := UpdateAndVerify(context.Background(), f.cfg)
	if err == nil || !strings.Contains(err.Error(), "without a client certificate was accepted") {
		t.Fatalf("err = %v", err)
	}
}

func TestUpdatedManifestAddsASANToWorkloadsOnly(t *testing.T) {
	f := newFixture(t, nil)
	next, err := UpdatedManifest(f.cfg.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Policies map[string]struct {
			SANs []string
			Role string
		}
	}
	if err := json.Unmarshal(next, &m); err != nil {
		t.Fatal(err)
	}
	for hash, entry := range m.Policies {
		has := len(entry.SANs) > 0 && entry.SANs[len(entry.SANs)-1] == UpdateSAN
		if has == (entry.Role == "coordinator") {
			t.Fatalf("policy %s (role %q): SANs %v", hash, entry.Role, entry.SANs)
		}
	}
}

func TestUpdateAndVerifyFindsANewRootKey(t *testing.T) {
	f := newFixture(t, nil)
	if err := SetAndVerify(context.Background(), f.cfg); err != nil {
		t.Fatalf("SetAndVerify: %v", err)
	}
	f.fake.changeRootKey = true
	err := UpdateAndVerify(context.Background(), f.cfg)
	if err == nil || !strings.Contains(err.Error(), "root CA's key") {
		t.Fatalf("err = %v", err)
	}
}
