package atlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"contrast-rs/conformance/atls"
	"contrast-rs/conformance/sevsnp"
)

// Chain is a test ARK -> ASK -> VCEK chain (ECDSA P-384 throughout; AMD's ARK/ASK are RSA,
// which the check does not depend on) and the VCEK's key.
type Chain struct {
	ARK, ASK, VCEK []byte
	vcekKey        *ecdsa.PrivateKey
}

func issue(subject string, key *ecdsa.PrivateKey, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, ca bool) ([]byte, *x509.Certificate, error) {
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: subject},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IsCA:         ca, BasicConstraintsValid: ca,
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return der, cert, err
}

// NewChain makes a chain; with broken, the VCEK is signed by a key that is not the ASK's.
func NewChain(broken bool) (*Chain, error) {
	keys := make([]*ecdsa.PrivateKey, 4)
	for i := range keys {
		k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		if err != nil {
			return nil, err
		}
		keys[i] = k
	}
	arkDER, ark, err := issue("ARK-Test", keys[0], nil, nil, true)
	if err != nil {
		return nil, err
	}
	askDER, ask, err := issue("SEV-Test", keys[1], ark, keys[0], true)
	if err != nil {
		return nil, err
	}
	issuer, issuerKey := ask, keys[1]
	if broken {
		// Another "ASK": same name, other key.
		if _, issuer, err = issue("SEV-Test", keys[3], ark, keys[0], true); err != nil {
			return nil, err
		}
		issuerKey = keys[3]
	}
	vcekDER, _, err := issue("SEV-VCEK", keys[2], issuer, issuerKey, false)
	if err != nil {
		return nil, err
	}
	return &Chain{ARK: arkDER, ASK: askDER, VCEK: vcekDER, vcekKey: keys[2]}, nil
}

// le72 is v as 72 little-endian bytes.
func le72(v *big.Int) []byte {
	be := v.FillBytes(make([]byte, 72))
	out := make([]byte, 72)
	for i := range be {
		out[71-i] = be[i]
	}
	return out
}

// SignedAttestation is a version-3 report (Milan B1 CPUID) with reportData and hostData,
// signed by the chain's VCEK over atls.ReportBytes, with the chain.
func (c *Chain) SignedAttestation(reportData, hostData []byte, tamper bool) ([]byte, error) {
	filled := func(n int, b byte) []byte {
		out := make([]byte, n)
		for i := range out {
			out[i] = b + byte(i)
		}
		return out
	}
	r := &sevsnp.Report{
		Version: 3, GuestSvn: 2, Policy: 0x30000, FamilyId: filled(16, 1), ImageId: filled(16, 2),
		Vmpl: 0, SignatureAlgo: 1, CurrentTcb: 0xdb18000000000004, PlatformInfo: 1,
		ReportData: reportData, Measurement: filled(48, 3), HostData: hostData,
		IdKeyDigest: filled(48, 4), AuthorKeyDigest: make([]byte, 48), ReportId: filled(32, 5),
		ReportIdMa: make([]byte, 32), ReportedTcb: 0xdb18000000000004, ChipId: filled(64, 6),
		CommittedTcb: 0xdb18000000000004, CurrentBuild: 21, CurrentMinor: 55, CurrentMajor: 1,
		CommittedBuild: 21, CommittedMinor: 55, CommittedMajor: 1, LaunchTcb: 0xdb18000000000004,
		Cpuid1EaxFms: atls.Cpuid1Eax(0x19, 0x01, 0x1), Signature: make([]byte, 512),
	}
	raw, err := atls.ReportBytes(r)
	if err != nil {
		return nil, err
	}
	digest := sha512.Sum384(raw[:0x2A0])
	sr, ss, err := ecdsa.Sign(rand.Reader, c.vcekKey, digest[:])
	if err != nil {
		return nil, err
	}
	copy(r.Signature, le72(sr))
	copy(r.Signature[72:], le72(ss))
	if tamper {
		r.Measurement[0] ^= 1
	}
	return proto.Marshal(&sevsnp.Attestation{
		Report:           r,
		CertificateChain: &sevsnp.CertificateChain{VcekCert: c.VCEK, AskCert: c.ASK, ArkCert: c.ARK},
		Product:          &sevsnp.SevProduct{Name: sevsnp.SevProduct_SEV_PRODUCT_MILAN, MachineStepping: wrapperspb.UInt32(0)},
	})
}
