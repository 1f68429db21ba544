"""SPF as a destination checks it, with Python pyspf, against a stub DNS (no network):
pyspf's DNS lookup function is replaced by one that answers TXT queries from RECORDS
and nothing else.

usage: spf_check.py RECORDS_JSON HELO IP:SENDER [IP:SENDER ...]
  RECORDS_JSON: {"domain": "v=spf1 ...", ...}, the TXT record each domain publishes.
Prints one JSON object: {"checks": [{"ip": IP, "sender": SENDER, "result": "pass",
"explanation": "..."}, ...], "lookups": [[name, type], ...]}.
"""
import json
import sys

import spf


def main():
    records = {domain.lower(): text for domain, text in json.loads(sys.argv[1]).items()}
    helo = sys.argv[2]
    lookups = []

    def stub_lookup(name, qtype, *args, **kwargs):
        """The stub that replaces `spf.DNSLookup`: [((name, type), value), ...], the
        shape pyspf's own dnspython driver returns; empty (NXDOMAIN) for the rest."""
        lookups.append([name, qtype])
        text = records.get(name.rstrip(".").lower())
        if qtype == "TXT" and text is not None:
            return [((name, "TXT"), [text.encode()])]
        return []

    spf.DNSLookup = stub_lookup
    checks = []
    for pair in sys.argv[3:]:
        ip, sender = pair.split(":", 1)
        result, explanation = spf.check2(i=ip, s=sender, h=helo)
        checks.append({"ip": ip, "sender": sender, "result": result, "explanation": explanation})
    json.dump({"checks": checks, "lookups": lookups}, sys.stdout)


if __name__ == "__main__":
    main()
