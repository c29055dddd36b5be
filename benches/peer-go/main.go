// Command peer-go times, with the Go standard library only, the cryptography that upstream
// Contrast's Go code (go-sev-guest's verify package) performs per SEV-SNP attestation, on the
// real Milan vector: the report's ECDSA P-384/SHA-384 signature checked with the VCEK, the VCEK's
// RSASSA-PSS SHA-384 signature checked with the ASK, and the ASK's with the ARK. This is the
// crypto floor of the Go implementation; run.sh compares it with ours.
//
// Every case is timed the same way as the Rust side (benches/examples/peer_go.rs): calibrate
// the iteration count to about 0.3 s, then take the median ns/op of 7 samples. Output lines are
// "go <case> <ns/op>", read by run.sh.
package main

import (
	"crypto/ecdsa"
	"crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"flag"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

const (
	sigOffset    = 0x2A0 // the signature; the signed part is report[:sigOffset]
	scalarLength = 72    // r and s: 72 bytes each, little-endian, zero-padded
	p384Length   = 48
)

// snpSignatureDER turns the report's little-endian r ‖ s into the ASN.1 form that
// x509.Certificate.CheckSignature takes, as go-sev-guest's verify.SnpReportSignature does.
func snpSignatureDER(report []byte) ([]byte, error) {
	le := func(b []byte) *big.Int {
		be := make([]byte, len(b))
		for i := range b {
			be[len(b)-1-i] = b[i]
		}
		return new(big.Int).SetBytes(be)
	}
	sig := report[sigOffset:]
	r := le(sig[:scalarLength])
	s := le(sig[scalarLength : 2*scalarLength])
	return asn1.Marshal(struct{ R, S *big.Int }{r, s})
}

func mustRead(path string) []byte {
	data, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	return data
}

func mustParse(der []byte, name string) *x509.Certificate {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		fmt.Fprintf(os.Stderr, "parse %s: %v\n", name, err)
		os.Exit(1)
	}
	return cert
}

// measure returns the median ns/op of `samples` runs of f, each of an iteration count
// calibrated so that one sample takes about `target`.
func measure(f func() error, target time.Duration, samples int) float64 {
	if err := f(); err != nil {
		fmt.Fprintln(os.Stderr, "verification failed:", err)
		os.Exit(1)
	}
	n := 1
	for {
		start := time.Now()
		for i := 0; i < n; i++ {
			_ = f()
		}
		elapsed := time.Since(start)
		if elapsed >= target/4 {
			n = int(float64(n) * float64(target) / float64(elapsed))
			if n < 1 {
				n = 1
			}
			break
		}
		n *= 4
	}
	results := make([]float64, samples)
	for s := range results {
		start := time.Now()
		for i := 0; i < n; i++ {
			if err := f(); err != nil {
				fmt.Fprintln(os.Stderr, "verification failed:", err)
				os.Exit(1)
			}
		}
		results[s] = float64(time.Since(start).Nanoseconds()) / float64(n)
	}
	sort.Float64s(results)
	return results[samples/2]
}

func main() {
	root := flag.String("root", "../..", "repository root (vectors are read from it)")
	sampleTime := flag.Duration("sample", 300*time.Millisecond, "time per sample")
	samples := flag.Int("samples", 7, "samples per case (median reported)")
	flag.Parse()

	vectors := filepath.Join(*root, "contrast-attest", "tests", "vectors")
	roots := filepath.Join(*root, "contrast-attest", "roots", "milan")
	report, err := hex.DecodeString(strings.TrimSpace(string(mustRead(filepath.Join(vectors, "report_milan.hex")))))
	if err != nil || len(report) < sigOffset+2*scalarLength {
		fmt.Fprintln(os.Stderr, "bad report hex:", err)
		os.Exit(1)
	}
	vcekDER := mustRead(filepath.Join(vectors, "vcek_milan.der"))
	askDER := mustRead(filepath.Join(roots, "ask.der"))
	arkDER := mustRead(filepath.Join(roots, "ark.der"))
	vcek := mustParse(vcekDER, "VCEK")
	ask := mustParse(askDER, "ASK")
	ark := mustParse(arkDER, "ARK")
	if _, ok := vcek.PublicKey.(*ecdsa.PublicKey); !ok {
		fmt.Fprintln(os.Stderr, "the VCEK key is not ECDSA")
		os.Exit(1)
	}

	// Report signature as go-sev-guest checks it: DER-encode r, s; CheckSignature hashes the
	// signed part with SHA-384 and calls ecdsa.VerifyASN1.
	reportSig := func() error {
		der, err := snpSignatureDER(report)
		if err != nil {
			return err
		}
		return vcek.CheckSignature(x509.ECDSAWithSHA384, report[:sigOffset], der)
	}
	// The same check with the hash and the DER encoding done once: ecdsa.VerifyASN1 alone.
	digest := sha512.Sum384(report[:sigOffset])
	sigDER, _ := snpSignatureDER(report)
	vcekKey := vcek.PublicKey.(*ecdsa.PublicKey)
	rawECDSA := func() error {
		if !ecdsa.VerifyASN1(vcekKey, digest[:], sigDER) {
			return fmt.Errorf("ecdsa.VerifyASN1 rejects the report")
		}
		return nil
	}
	// RSASSA-PSS SHA-384 (salt 48 = hash length, as x509 requires): CheckSignatureFrom checks
	// the issuer is a CA, then rsa.VerifyPSS over SHA-384 of the TBS.
	vcekByAsk := func() error { return vcek.CheckSignatureFrom(ask) }
	askByArk := func() error { return ask.CheckSignatureFrom(ark) }
	arkSelf := func() error { return ark.CheckSignatureFrom(ark) }
	parseVcek := func() error { _, err := x509.ParseCertificate(vcekDER); return err }
	parseAll := func() error {
		for _, der := range [][]byte{arkDER, askDER, vcekDER} {
			if _, err := x509.ParseCertificate(der); err != nil {
				return err
			}
		}
		return nil
	}
	// The crypto floor per attestation: report + VCEK-by-ASK + ASK-by-ARK.
	floor := func() error {
		if err := reportSig(); err != nil {
			return err
		}
		if err := vcekByAsk(); err != nil {
			return err
		}
		return askByArk()
	}
	// Everything from DER, as our `full_from_der` does: parse ARK, ASK, VCEK; ARK self-signature,
	// ASK by ARK, VCEK by ASK; the report signature.
	fullFromDER := func() error {
		arkP, err := x509.ParseCertificate(arkDER)
		if err != nil {
			return err
		}
		askP, err := x509.ParseCertificate(askDER)
		if err != nil {
			return err
		}
		vcekP, err := x509.ParseCertificate(vcekDER)
		if err != nil {
			return err
		}
		if err := arkP.CheckSignatureFrom(arkP); err != nil {
			return err
		}
		if err := askP.CheckSignatureFrom(arkP); err != nil {
			return err
		}
		if err := vcekP.CheckSignatureFrom(askP); err != nil {
			return err
		}
		der, err := snpSignatureDER(report)
		if err != nil {
			return err
		}
		return vcekP.CheckSignature(x509.ECDSAWithSHA384, report[:sigOffset], der)
	}

	cases := []struct {
		name string
		f    func() error
	}{
		{"report_ecdsa", reportSig},
		{"report_ecdsa_raw", rawECDSA},
		{"vcek_by_ask_pss", vcekByAsk},
		{"ask_by_ark_pss", askByArk},
		{"ark_self_pss", arkSelf},
		{"parse_vcek", parseVcek},
		{"parse_3_certs", parseAll},
		{"floor_total", floor},
		{"full_from_der", fullFromDER},
	}
	for _, c := range cases {
		ns := measure(c.f, *sampleTime, *samples)
		fmt.Printf("go %s %.0f\n", c.name, ns)
	}
}
