package atls

import (
	"crypto/ecdsa"
	"crypto/sha512"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"math/big"

	"contrast-rs/conformance/sevsnp"
)

// The SEV-SNP ATTESTATION_REPORT layout (AMD SEV-SNP ABI specification, "ATTESTATION_REPORT
// Structure"), written here from the specification for this check: 1184 bytes, the signature
// over bytes 0x000–0x29F, ECDSA P-384 with SHA-384, R and S little-endian in 72-byte slots.
const (
	reportLen        = 0x4A0
	signedLen        = 0x2A0
	signatureAreaLen = reportLen - signedLen
	sigComponentLen  = 72
)

// ReportBytes rebuilds the raw report from go-sev-guest's proto fields. Version 3 adds the
// CPUID family/model/stepping bytes (proto: cpuid1eax_fms, CPUID(1).EAX encoding), version 5
// the mitigation vectors.
func ReportBytes(r *sevsnp.Report) ([]byte, error) {
	out := make([]byte, reportLen)
	le32 := func(off int, v uint32) { binary.LittleEndian.PutUint32(out[off:], v) }
	le64 := func(off int, v uint64) { binary.LittleEndian.PutUint64(out[off:], v) }
	var err error
	put := func(off int, name string, b []byte, width int) {
		if err == nil && len(b) != width {
			err = fmt.Errorf("report field %s has %d bytes, want %d", name, len(b), width)
			return
		}
		copy(out[off:], b)
	}
	u8 := func(off int, name string, v uint32) {
		if err == nil && v > 0xff {
			err = fmt.Errorf("report field %s = %d does not fit a byte", name, v)
		}
		out[off] = byte(v)
	}
	le32(0x000, r.GetVersion())
	le32(0x004, r.GetGuestSvn())
	le64(0x008, r.GetPolicy())
	put(0x010, "family_id", r.GetFamilyId(), 16)
	put(0x020, "image_id", r.GetImageId(), 16)
	le32(0x030, r.GetVmpl())
	le32(0x034, r.GetSignatureAlgo())
	le64(0x038, r.GetCurrentTcb())
	le64(0x040, r.GetPlatformInfo())
	le32(0x048, r.GetSignerInfo())
	put(0x050, "report_data", r.GetReportData(), 64)
	put(0x090, "measurement", r.GetMeasurement(), 48)
	put(0x0C0, "host_data", r.GetHostData(), 32)
	put(0x0E0, "id_key_digest", r.GetIdKeyDigest(), 48)
	put(0x110, "author_key_digest", r.GetAuthorKeyDigest(), 48)
	put(0x140, "report_id", r.GetReportId(), 32)
	put(0x160, "report_id_ma", r.GetReportIdMa(), 32)
	le64(0x180, r.GetReportedTcb())
	if r.GetVersion() >= 3 {
		family, model, stepping := fmsFromCpuid1Eax(r.GetCpuid1EaxFms())
		out[0x188], out[0x189], out[0x18A] = family, model, stepping
	} else if r.GetCpuid1EaxFms() != 0 {
		return nil, fmt.Errorf("report version %d has no CPUID fields, but cpuid1eax_fms = %#x", r.GetVersion(), r.GetCpuid1EaxFms())
	}
	put(0x1A0, "chip_id", r.GetChipId(), 64)
	le64(0x1E0, r.GetCommittedTcb())
	u8(0x1E8, "current_build", r.GetCurrentBuild())
	u8(0x1E9, "current_minor", r.GetCurrentMinor())
	u8(0x1EA, "current_major", r.GetCurrentMajor())
	u8(0x1EC, "committed_build", r.GetCommittedBuild())
	u8(0x1ED, "committed_minor", r.GetCommittedMinor())
	u8(0x1EE, "committed_major", r.GetCommittedMajor())
	le64(0x1F0, r.GetLaunchTcb())
	if r.GetVersion() >= 5 {
		le64(0x1F8, r.GetLaunchMitVector())
		le64(0x200, r.GetCurrentMitVector())
	} else if r.GetLaunchMitVector() != 0 || r.GetCurrentMitVector() != 0 {
		return nil, fmt.Errorf("report version %d has no mitigation vectors, but they are set", r.GetVersion())
	}
	put(signedLen, "signature", r.GetSignature(), signatureAreaLen)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// fmsFromCpuid1Eax splits CPUID(1).EAX into family, model and stepping (extended family and
// model folded in).
func fmsFromCpuid1Eax(eax uint32) (family, model, stepping byte) {
	baseFamily := byte(eax>>8) & 0xf
	family = baseFamily
	if baseFamily == 0xf {
		family += byte(eax >> 20)
	}
	model = byte(eax>>4)&0xf | (byte(eax>>16)&0xf)<<4
	return family, model, byte(eax) & 0xf
}

// Cpuid1Eax is the CPUID(1).EAX encoding of family, model and stepping.
func Cpuid1Eax(family, model, stepping byte) uint32 {
	baseFamily, extFamily := family, byte(0)
	if family >= 0xf {
		baseFamily, extFamily = 0xf, family-0xf
	}
	return uint32(extFamily)<<20 | uint32(model>>4)<<16 | uint32(baseFamily)<<8 | uint32(model&0xf)<<4 | uint32(stepping&0xf)
}

// VerifyReportSignature checks the report's signature with the endorsement key certificate in
// the attestation (VCEK, or VLEK when the report says so), and the certificate chain that
// comes with it (endorsement key <- ASK/ASVK <- ARK, ARK self-signed), as far as it is present.
// The ARK is NOT compared with AMD's: on the simulated platform it is the simulator's.
func VerifyReportSignature(a *sevsnp.Attestation) (string, error) {
	r := a.GetReport()
	raw, err := ReportBytes(r)
	if err != nil {
		return "", err
	}
	chain := a.GetCertificateChain()
	signingKey := (r.GetSignerInfo() >> 2) & 0x7
	name, der := "VCEK", chain.GetVcekCert()
	if signingKey == 1 {
		name, der = "VLEK", chain.GetVlekCert()
	}
	if len(der) == 0 {
		return "", fmt.Errorf("the attestation has no %s certificate (signer_info signing key %d)", name, signingKey)
	}
	ek, err := x509.ParseCertificate(der)
	if err != nil {
		return "", fmt.Errorf("parsing the %s certificate: %w", name, err)
	}
	pub, ok := ek.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve.Params().BitSize != 384 {
		return "", fmt.Errorf("the %s key is not ECDSA P-384", name)
	}
	if r.GetSignatureAlgo() != 1 {
		return "", fmt.Errorf("signature_algo %d, want 1 (ECDSA P-384 with SHA-384)", r.GetSignatureAlgo())
	}
	sig := raw[signedLen:]
	rInt := new(big.Int).SetBytes(reverse(sig[:sigComponentLen]))
	sInt := new(big.Int).SetBytes(reverse(sig[sigComponentLen : 2*sigComponentLen]))
	digest := sha512.Sum384(raw[:signedLen])
	if !ecdsa.Verify(pub, digest[:], rInt, sInt) {
		return "", fmt.Errorf("the report's signature does not verify with the %s key over the report rebuilt from the protobuf fields", name)
	}
	summary := "report signature verifies with the " + name
	if len(chain.GetAskCert()) == 0 {
		return summary + " (no ASK/ARK in the attestation)", nil
	}
	ask, err := x509.ParseCertificate(chain.GetAskCert())
	if err != nil {
		return "", fmt.Errorf("parsing the ASK certificate: %w", err)
	}
	if err := ask.CheckSignature(ek.SignatureAlgorithm, ek.RawTBSCertificate, ek.Signature); err != nil {
		return "", fmt.Errorf("the %s is not signed by the ASK: %w", name, err)
	}
	summary += ", signed by the ASK"
	if len(chain.GetArkCert()) == 0 {
		return summary + " (no ARK)", nil
	}
	ark, err := x509.ParseCertificate(chain.GetArkCert())
	if err != nil {
		return "", fmt.Errorf("parsing the ARK certificate: %w", err)
	}
	if err := ark.CheckSignature(ask.SignatureAlgorithm, ask.RawTBSCertificate, ask.Signature); err != nil {
		return "", fmt.Errorf("the ASK is not signed by the ARK: %w", err)
	}
	if err := ark.CheckSignature(ark.SignatureAlgorithm, ark.RawTBSCertificate, ark.Signature); err != nil {
		return "", fmt.Errorf("the ARK is not self-signed: %w", err)
	}
	return summary + ", signed by the self-signed ARK (not compared with AMD's)", nil
}

func reverse(b []byte) []byte {
	out := make([]byte, len(b))
	for i := range b {
		out[len(b)-1-i] = b[i]
	}
	return out
}
