#!/usr/bin/env python3
"""Drives the Coordinator's transit engine with hvac, the Vault client library (not our code).

  hvac_check.py before --url URL --root-ca PEM --name NAME --cert PEM --key PEM
                       --other-cert PEM --other-key PEM --out FILE
      encrypt and decrypt with the latest and a second key version and with associated data;
      a client whose mesh certificate names another workload-secret ID is refused (403); a
      client without a certificate fails the handshake. Writes the ciphertexts to FILE.
  hvac_check.py after --url URL --root-ca PEM --name NAME --cert PEM --key PEM --in FILE
      decrypts the ciphertexts FILE holds (after a restart and recovery of the Coordinator).

The server's certificate is verified against the Coordinator's root CA, for the host name
"coordinator" (a SAN the manifest gives the Coordinator), whatever address is dialled.
"""

import argparse
import base64
import json
import sys

import hvac
import hvac.exceptions
import requests
from requests.adapters import HTTPAdapter

SERVER_NAME = "coordinator"


class ServerName(HTTPAdapter):
    """Checks the server certificate for SERVER_NAME instead of the dialled address."""

    def init_poolmanager(self, *args, **kwargs):
        kwargs["assert_hostname"] = SERVER_NAME
        super().init_poolmanager(*args, **kwargs)


def client(args, cert=None) -> hvac.Client:
    session = requests.Session()
    session.mount("https://", ServerName())
    # hvac takes verify and cert from a session it is given (its own arguments lose).
    session.verify = args.root_ca
    session.cert = cert
    return hvac.Client(url=args.url, cert=cert, verify=args.root_ca, session=session, timeout=10)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def fail(message: str) -> None:
    print(f"hvac_check: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def decrypt(vault: hvac.Client, name: str, ciphertext: str, aad=None) -> bytes:
    answer = vault.secrets.transit.decrypt_data(
        name=name, ciphertext=ciphertext, associated_data=aad, mount_point="transit"
    )
    return base64.b64decode(answer["data"]["plaintext"])


def before(args) -> None:
    vault = client(args, (args.cert, args.key))
    secret = b"the root key of a Vault that must auto-unseal"
    saved = []

    answer = vault.secrets.transit.encrypt_data(
        name=args.name, plaintext=b64(secret), mount_point="transit"
    )
    ciphertext = answer["data"]["ciphertext"]
    if not ciphertext.startswith("vault:v"):
        fail(f"ciphertext {ciphertext!r} is not in Vault's format")
    if decrypt(vault, args.name, ciphertext) != secret:
        fail("decrypt(encrypt(x)) != x")
    saved.append({"ciphertext": ciphertext, "plaintext": b64(secret), "aad": None})
    print(f"ok: encrypt/decrypt with the default key version ({ciphertext.split(':')[1]})")

    aad = b64(b"vault cluster 1")
    answer = vault.secrets.transit.encrypt_data(
        name=args.name,
        plaintext=b64(secret),
        key_version=2,
        associated_data=aad,
        mount_point="transit",
    )
    second = answer["data"]["ciphertext"]
    if not second.startswith("vault:v2:"):
        fail(f"key_version 2 gave {second!r}")
    if decrypt(vault, args.name, second, aad) != secret:
        fail("decrypt with key version 2 and associated data")
    try:
        decrypt(vault, args.name, second, b64(b"another context"))
        fail("decrypting with other associated data succeeded")
    except hvac.exceptions.VaultError as error:
        print(f"ok: other associated data refused ({type(error).__name__})")
    saved.append({"ciphertext": second, "plaintext": b64(secret), "aad": aad})
    print("ok: key version 2 with associated data")

    stranger = client(args, (args.other_cert, args.other_key))
    for operation in ("encrypt", "decrypt"):
        try:
            if operation == "encrypt":
                stranger.secrets.transit.encrypt_data(
                    name=args.name, plaintext=b64(secret), mount_point="transit"
                )
            else:
                decrypt(stranger, args.name, ciphertext)
            fail(f"another workload's certificate could {operation} with {args.name}")
        except hvac.exceptions.Forbidden as error:
            print(f"ok: another workload's certificate refused for {operation}: {error}")

    anonymous = client(args)
    try:
        decrypt(anonymous, args.name, ciphertext)
        fail("a client without a certificate was served")
    except (requests.exceptions.SSLError, requests.exceptions.ConnectionError) as error:
        print(f"ok: a client without a certificate fails the handshake ({type(error).__name__})")

    with open(args.out, "w") as out:
        json.dump(saved, out)


def after(args) -> None:
    vault = client(args, (args.cert, args.key))
    with open(args.inp) as saved_file:
        saved = json.load(saved_file)
    for entry in saved:
        if decrypt(vault, args.name, entry["ciphertext"], entry["aad"]) != base64.b64decode(
            entry["plaintext"]
        ):
            fail(f"{entry['ciphertext']} does not decrypt to what was encrypted")
    print(f"ok: {len(saved)} ciphertexts from before decrypt")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("phase", choices=["before", "after"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--root-ca", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--other-cert")
    parser.add_argument("--other-key")
    parser.add_argument("--out")
    parser.add_argument("--in", dest="inp")
    args = parser.parse_args()
    if args.phase == "before":
        before(args)
    else:
        after(args)


if __name__ == "__main__":
    main()
