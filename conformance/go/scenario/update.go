package scenario

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"contrast-rs/conformance/userapi"
)

// UpdateSAN is the SAN UpdatedManifest adds.
const UpdateSAN = "conformance-update.example"

// UpdatedManifest is the manifest with UpdateSAN added to the SANs of every policy that is
// not the Coordinator's, re-encoded by Go's encoding/json (indented, keys sorted).
func UpdatedManifest(manifest []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(manifest))
	dec.UseNumber()
	var m map[string]interface{}
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("the manifest is not a JSON object: %w", err)
	}
	policies, ok := m["Policies"].(map[string]interface{})
	if !ok {
		return nil, fmt.Errorf("the manifest has no Policies object")
	}
	changed := 0
	for _, v := range policies {
		entry, ok := v.(map[string]interface{})
		if !ok || entry["Role"] == "coordinator" {
			continue
		}
		sans, _ := entry["SANs"].([]interface{})
		entry["SANs"] = append(sans, UpdateSAN)
		changed++
	}
	if changed == 0 {
		return nil, fmt.Errorf("the manifest has no workload policy to add a SAN to")
	}
	return json.MarshalIndent(m, "", "  ")
}

// UpdateAndVerify runs after SetAndVerify against the same Coordinator (history [manifest]):
// an update (the manifest with a new SAN) must be refused with PermissionDenied without a
// client certificate and with a certificate over another key, and accepted with the
// workload-owner key (its self-signed client certificate is the authorisation); then
// GetManifests must show both manifests and the chained transition hash.
func UpdateAndVerify(ctx context.Context, c *Config) error {
	if c.OwnerKey == nil {
		return fmt.Errorf("input: the update needs the workload-owner key")
	}
	next, err := UpdatedManifest(c.Manifest)
	if err != nil {
		return fmt.Errorf("input: %w", err)
	}
	call := func(key crypto.Signer, f func(userapi.UserAPIClient, context.Context) error) error {
		conn, _, err := c.dialAs(ctx, key)
		if err != nil {
			return err
		}
		defer conn.Close()
		callCtx, cancel := context.WithTimeout(ctx, c.Timeout)
		defer cancel()
		return f(userapi.NewUserAPIClient(conn), callCtx)
	}

	c.logf("step: GetManifests without a client certificate (the history must be [the first manifest])")
	var before *userapi.GetManifestsResponse
	if err := call(nil, func(client userapi.UserAPIClient, ctx context.Context) (err error) {
		before, err = client.GetManifests(ctx, &userapi.GetManifestsRequest{})
		return err
	}); err != nil {
		return failf("GetManifests without a client certificate failed: %s", describeStatus(err))
	}
	if len(before.GetManifests()) != 1 || !bytes.Equal(before.GetManifests()[0], c.Manifest) {
		return failf("the history has %d manifests, want [the first manifest] (run set-and-verify first, on a fresh Coordinator)", len(before.GetManifests()))
	}
	c.logf("  ok")

	request := &userapi.SetManifestRequest{Manifest: next, Policies: c.Policies}
	stranger, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return err
	}
	for _, who := range []struct {
		name string
		key  crypto.Signer
	}{{"without a client certificate", nil}, {"with a certificate over a key that is not a workload owner's", stranger}} {
		c.logf("step: SetManifest (update) %s: must be PermissionDenied", who.name)
		err := call(who.key, func(client userapi.UserAPIClient, ctx context.Context) error {
			_, err := client.SetManifest(ctx, request)
			return err
		})
		if err == nil {
			return failf("the update %s was accepted", who.name)
		}
		if s, ok := status.FromError(err); !ok || s.Code() != codes.PermissionDenied {
			return failf("the update %s failed with %s, want PermissionDenied", who.name, describeStatus(err))
		}
		c.logf("  ok: %s", describeStatus(err))
	}

	c.logf("step: SetManifest (update, %d-byte manifest with SAN %s) with the workload-owner key", len(next), UpdateSAN)
	var set *userapi.SetManifestResponse
	if err := call(c.OwnerKey, func(client userapi.UserAPIClient, ctx context.Context) (err error) {
		set, err = client.SetManifest(ctx, request)
		return err
	}); err != nil {
		return failf("the update with the workload-owner key failed: %s", describeStatus(err))
	}
	if err := checkCA("SetManifestResponse.RootCA", set.GetRootCA()); err != nil {
		return err
	}
	if err := checkCA("SetManifestResponse.MeshCA", set.GetMeshCA()); err != nil {
		return err
	}
	// The root key is derived from the seed: the certificate may be issued anew (upstream's
	// CA is rebuilt on every SetManifest), its key and subject stay.
	oldRoot, newRoot := parsePEMCert(before.GetRootCA()), parsePEMCert(set.GetRootCA())
	if !bytes.Equal(oldRoot.RawSubjectPublicKeyInfo, newRoot.RawSubjectPublicKeyInfo) || !bytes.Equal(oldRoot.RawSubject, newRoot.RawSubject) {
		return failf("the update changed the root CA's key or subject (the root key is derived from the seed and must stay)")
	}
	if set.SeedSharesDoc != nil {
		return failf("the update's SetManifestResponse has a SeedSharesDoc (only the first SetManifest sends one)")
	}
	c.logf("  ok: accepted; root CA key and subject unchanged (certificate re-issued: %v), MeshCA a PEM CA certificate (changed: %v), no SeedSharesDoc",
		!bytes.Equal(set.GetRootCA(), before.GetRootCA()), !bytes.Equal(set.GetMeshCA(), before.GetMeshCA()))

	c.logf("step: GetManifests after the update")
	var after *userapi.GetManifestsResponse
	if err := call(c.OwnerKey, func(client userapi.UserAPIClient, ctx context.Context) (err error) {
		after, err = client.GetManifests(ctx, &userapi.GetManifestsRequest{})
		return err
	}); err != nil {
		return failf("GetManifests after the update failed: %s", describeStatus(err))
	}
	history := after.GetManifests()
	if len(history) != 2 || !bytes.Equal(history[0], c.Manifest) || !bytes.Equal(history[1], next) {
		return failf("the history has %d manifests, want [first manifest, update]", len(history))
	}
	c.logf("  ok: Manifests == [first manifest, update]")
	if sent, got := policySet(c.Policies), policySet(after.GetPolicies()); fmt.Sprint(sent) != fmt.Sprint(got) {
		return failf("the policies are %v, want %v", got, sent)
	}
	if !bytes.Equal(after.GetRootCA(), set.GetRootCA()) || !bytes.Equal(after.GetMeshCA(), set.GetMeshCA()) {
		return failf("GetManifests' RootCA/MeshCA differ from the update's SetManifestResponse")
	}
	want := TransitionHash(next, TransitionHash(c.Manifest, make([]byte, 32)))
	if got := after.GetLatestTransition().GetTransitionHash(); !bytes.Equal(got, want) {
		return failf("LatestTransition.TransitionHash is %x, want SHA-256(SHA-256(update) ‖ first transition hash) = %x", got, want)
	}
	c.logf("  ok: Policies, RootCA/MeshCA, LatestTransition.TransitionHash chained = %x", want)
	return nil
}
