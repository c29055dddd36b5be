#!/usr/bin/env python3
"""Conformance of contrast-attest's sevsnp.Attestation with Google's protobuf runtime.

An implementation independent of the Rust code: the 1184-byte SEV-SNP report layout is parsed
here from its own offset table (AMD SEV-SNP ABI, ATTESTATION_REPORT), and the messages are
compiled from contrast-attest/proto/sevsnp.proto by grpc_tools' protoc into Python.

  (a) For every entry of fixtures.json, build a sevsnp.Attestation from the real report's
      fields, the certificates, the CRL (extras key 00569ee4-...) and the product
      (machine_stepping present and 0), and write it to ../fixtures/sevsnp/python/<name>.pb
      (deterministic serialisation).
  (b) Decode ../fixtures/sevsnp/rust/<name>.pb, written by contrast-attest's
      tests/conformance.rs with AttestationBuilder, and check every field against the report
      bytes and the certificate files.

Usage: sevsnp_fixtures.py [--check]
  --check  write nothing; fail if a regenerated Python fixture differs from the committed one
           or a Rust fixture does not decode or check out.
"""

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
CRATE = os.path.dirname(TESTS)
PROTO_DIR = os.path.join(CRATE, "proto")
PY_FIXTURES = os.path.join(TESTS, "fixtures", "sevsnp", "python")
RUST_FIXTURES = os.path.join(TESTS, "fixtures", "sevsnp", "rust")
CRL_KEY = "00569ee4-e480-4fba-bbf4-45b629901180"
REPORT_LEN = 0x4A0


def compile_proto(out_dir):
    import grpc_tools
    from grpc_tools import protoc

    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    rc = protoc.main(
        ["protoc", f"-I{PROTO_DIR}", f"-I{include}", f"--python_out={out_dir}", "sevsnp.proto"]
    )
    if rc != 0:
        sys.exit(f"protoc failed with {rc}")
    sys.path.insert(0, out_dir)
    import sevsnp_pb2  # noqa: E402

    return sevsnp_pb2


def read(path):
    with open(os.path.join(TESTS, path), "rb") as f:
        data = f.read()
    if path.endswith(".hex"):
        data = bytes.fromhex(data.decode().strip())
    return data


# (name, offset, size, kind): kind "u" little-endian integer, "b" bytes. The CPUID bytes, the
# mitigation vectors and the signature area are handled separately below.
LAYOUT = [
    ("version", 0x000, 4, "u"),
    ("guest_svn", 0x004, 4, "u"),
    ("policy", 0x008, 8, "u"),
    ("family_id", 0x010, 16, "b"),
    ("image_id", 0x020, 16, "b"),
    ("vmpl", 0x030, 4, "u"),
    ("signature_algo", 0x034, 4, "u"),
    ("current_tcb", 0x038, 8, "u"),
    ("platform_info", 0x040, 8, "u"),
    ("signer_info", 0x048, 4, "u"),
    ("report_data", 0x050, 64, "b"),
    ("measurement", 0x090, 48, "b"),
    ("host_data", 0x0C0, 32, "b"),
    ("id_key_digest", 0x0E0, 48, "b"),
    ("author_key_digest", 0x110, 48, "b"),
    ("report_id", 0x140, 32, "b"),
    ("report_id_ma", 0x160, 32, "b"),
    ("reported_tcb", 0x180, 8, "u"),
    ("chip_id", 0x1A0, 64, "b"),
    ("committed_tcb", 0x1E0, 8, "u"),
    ("current_build", 0x1E8, 1, "u"),
    ("current_minor", 0x1E9, 1, "u"),
    ("current_major", 0x1EA, 1, "u"),
    ("committed_build", 0x1EC, 1, "u"),
    ("committed_minor", 0x1ED, 1, "u"),
    ("committed_major", 0x1EE, 1, "u"),
    ("launch_tcb", 0x1F0, 8, "u"),
]


def cpuid1_eax(family, model, stepping):
    """CPUID(1).EAX for family/model/stepping (AMD64 APM: base family 0xF plus extended)."""
    ext_family, base_family = (family - 0xF, 0xF) if family >= 0xF else (0, family)
    return (
        (ext_family << 20)
        | ((model >> 4) << 16)
        | (base_family << 8)
        | ((model & 0xF) << 4)
        | (stepping & 0xF)
    )


def report_fields(raw):
    """Every sevsnp.Report field of a raw report, as a dict."""
    assert len(raw) == REPORT_LEN, len(raw)
    out = {}
    for name, offset, size, kind in LAYOUT:
        chunk = raw[offset : offset + size]
        out[name] = int.from_bytes(chunk, "little") if kind == "u" else bytes(chunk)
    version = out["version"]
    assert version in (2, 3, 4, 5), version
    out["cpuid1eax_fms"] = cpuid1_eax(raw[0x188], raw[0x189], raw[0x18A]) if version >= 3 else 0
    if version >= 5:
        out["launch_mit_vector"] = struct.unpack_from("<Q", raw, 0x1F8)[0]
        out["current_mit_vector"] = struct.unpack_from("<Q", raw, 0x200)[0]
    else:
        out["launch_mit_vector"] = 0
        out["current_mit_vector"] = 0
    out["signature"] = bytes(raw[0x2A0:0x4A0])
    return out


def product_from_cpuid(raw):
    """The product line of a v3+ report's CPUID bytes (family 0x19: Milan models 0x00-0x0F,
    Genoa 0x10-0x1F and 0xA0-0xAF; family 0x1A: Turin 0x00-0x11)."""
    family, model = raw[0x188], raw[0x189]
    if family == 0x19 and model <= 0x0F:
        return "MILAN"
    if family == 0x19 and (0x10 <= model <= 0x1F or 0xA0 <= model <= 0xAF):
        return "GENOA"
    if family == 0x1A and model <= 0x11:
        return "TURIN"
    return "UNKNOWN"


def build(pb, entry):
    raw = read(entry["report"])
    att = pb.Attestation()
    for name, value in report_fields(raw).items():
        setattr(att.report, name, value)
    chain = att.certificate_chain
    for field, key in (("vcek_cert", "vcek"), ("vlek_cert", "vlek"), ("ask_cert", "ask"), ("ark_cert", "ark")):
        if key in entry:
            setattr(chain, field, read(entry[key]))
    if "crl" in entry:
        chain.extras[CRL_KEY] = read(entry["crl"])
    for key, value in entry.get("python_only_extras", {}).items():
        chain.extras[key] = bytes.fromhex(value)
    if raw[0] >= 3:
        assert product_from_cpuid(raw) == entry["product"], entry["name"]
    att.product.name = pb.SevProduct.SevProductName.Value("SEV_PRODUCT_" + entry["product"])
    att.product.machine_stepping.value = 0
    return att.SerializeToString(deterministic=True)


def check_rust(pb, entry, data):
    """Decodes our Rust fixture and checks every field against the vector files."""
    name = entry["name"]
    att = pb.Attestation()
    att.ParseFromString(data)
    errors = []
    raw = read(entry["report"])
    if not att.HasField("report"):
        errors.append("no report")
    for field, value in report_fields(raw).items():
        found = getattr(att.report, field)
        if found != value:
            errors.append(f"report.{field}: {found!r} != {value!r}")
    chain = att.certificate_chain
    for field, key in (("vcek_cert", "vcek"), ("vlek_cert", "vlek"), ("ask_cert", "ask"), ("ark_cert", "ark")):
        expected = read(entry[key]) if key in entry else b""
        if getattr(chain, field) != expected:
            errors.append(f"certificate_chain.{field} differs")
    expected_extras = {CRL_KEY: read(entry["crl"])} if "crl" in entry else {}
    if dict(chain.extras) != expected_extras:
        errors.append(f"certificate_chain.extras: {sorted(chain.extras)} != {sorted(expected_extras)}")
    if not att.HasField("product"):
        errors.append("no product")
    found_name = pb.SevProduct.SevProductName.Name(att.product.name)
    if found_name != "SEV_PRODUCT_" + entry["product"]:
        errors.append(f"product.name {found_name}")
    if not att.product.HasField("machine_stepping") or att.product.machine_stepping.value != 0:
        errors.append("product.machine_stepping must be present and 0")
    # The encoding itself: the same message serialised by Python is byte-identical.
    if att.SerializeToString(deterministic=True) != data:
        errors.append("re-serialisation by Python differs from our bytes")
    return [f"{name}: {e}" for e in errors]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    with open(os.path.join(HERE, "fixtures.json")) as f:
        entries = json.load(f)
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        pb = compile_proto(tmp)
        for entry in entries:
            name = entry["name"]
            data = build(pb, entry)
            path = os.path.join(PY_FIXTURES, name + ".pb")
            if args.check:
                try:
                    with open(path, "rb") as f:
                        committed = f.read()
                except FileNotFoundError:
                    committed = None
                if committed != data:
                    failures.append(f"{name}: regenerated Python fixture differs from {path}")
            else:
                os.makedirs(PY_FIXTURES, exist_ok=True)
                with open(path, "wb") as f:
                    f.write(data)
            rust_path = os.path.join(RUST_FIXTURES, name + ".pb")
            try:
                with open(rust_path, "rb") as f:
                    rust = f.read()
            except FileNotFoundError:
                failures.append(f"{name}: missing {rust_path} (CONTRAST_UPDATE_FIXTURES=1 cargo test -p contrast-attest --test conformance writes it)")
                continue
            try:
                failures.extend(check_rust(pb, entry, rust))
            except Exception as e:  # a decode error of the protobuf runtime
                failures.append(f"{name}: {rust_path} does not decode: {e}")
    for failure in failures:
        print("FAIL", failure, file=sys.stderr)
    if failures:
        sys.exit(1)
    print(f"sevsnp conformance: {len(entries)} fixtures OK" + (" (checked)" if args.check else " (written)"))


if __name__ == "__main__":
    main()
