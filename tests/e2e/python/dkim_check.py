"""DKIM at both ends of a forward, with Python dkimpy: signs messages as the sender's
domain would, and verifies what the destination received as a receiver would, against
a stub DNS that publishes the public key (no network).

usage:
  dkim_check.py keygen KEY_DIR
      A fresh 2048-bit RSA key: KEY_DIR/private.pem and KEY_DIR/dns.txt (the TXT record
      `v=DKIM1; k=rsa; p=...` for SELECTOR._domainkey.DOMAIN).
  dkim_check.py sign KEY_DIR IN OUT [IN OUT ...]
      Signs each IN twice, relaxed/relaxed then simple/simple (the simple/simple
      signature on top), and writes the signed message to OUT.
  dkim_check.py verify KEY_DIR FILE [FILE ...]
      Verifies every DKIM-Signature of each FILE, topmost first; prints one JSON object:
      {FILE: [{"c": "simple/simple", "pass": true, "why": ""}, ...]}, `why` saying
      what failed.
"""
import json
import os
import sys

import dkim
from dkim import dknewkey

DOMAIN = b"example.org"
SELECTOR = b"fwdtest"
CANONICALIZATIONS = [(b"relaxed", b"relaxed"), (b"simple", b"simple")]


def keygen(key_dir):
    private = os.path.join(key_dir, "private.pem")
    dknewkey.GenRSAKeys(private, verbose=False)
    dknewkey.ExtractRSADnsPublicKey(private, os.path.join(key_dir, "dns.txt"), verbose=False)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def sign(key_dir, pairs):
    private = read(os.path.join(key_dir, "private.pem"))
    for source, target in pairs:
        message = read(source)
        for canonicalize in CANONICALIZATIONS:
            # dkimpy's default header list: From (also oversigned), To, Subject, Date,
            # Message-ID, the MIME headers... whichever the message has.
            message = dkim.sign(message, SELECTOR, DOMAIN, private, canonicalize=canonicalize) + message
        with open(target, "wb") as f:
            f.write(message)


def stub_dns(key_dir):
    """The DNS of this test: the key's TXT record and nothing else."""
    record = read(os.path.join(key_dir, "dns.txt"))
    name = SELECTOR + b"._domainkey." + DOMAIN

    def lookup(query, timeout=5):
        return record if query.rstrip(b".").lower() == name else None

    return lookup


def verify(key_dir, files):
    dnsfunc = stub_dns(key_dir)
    results = {}
    for path in files:
        message = read(path)
        checker = dkim.DKIM(message)
        signatures = []
        headers = [value for name, value in checker.headers if name.lower() == b"dkim-signature"]
        for index, value in enumerate(headers):
            try:
                passed, why = bool(checker.verify(idx=index, dnsfunc=dnsfunc)), ""
            except dkim.DKIMException as e:  # what dkim.verify() turns into False
                passed, why = False, str(e)
            canonicalization = dkim.util.parse_tag_value(value).get(b"c", b"simple/simple")
            signatures.append({"c": canonicalization.decode(), "pass": passed, "why": why})
        results[path] = signatures
    json.dump(results, sys.stdout)


def main():
    command, key_dir, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
    if command == "keygen":
        keygen(key_dir)
    elif command == "sign":
        sign(key_dir, list(zip(rest[::2], rest[1::2])))
    elif command == "verify":
        verify(key_dir, rest)
    else:
        sys.exit(f"unknown command {command!r}\n{__doc__}")


if __name__ == "__main__":
    main()
