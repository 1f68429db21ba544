"""A gRPC client not written in Rust: ingests one email into mailfwd and reprocesses it.

usage: grpc_client.py STUBS_DIR HOST:PORT RECIPIENT
Prints one JSON object with what the server answered.
"""
import json
import sys

sys.path.insert(0, sys.argv[1])

import grpc  # noqa: E402
from mailfwd.v1 import forwarding_pb2 as pb  # noqa: E402
from mailfwd.v1 import forwarding_pb2_grpc as rpc  # noqa: E402


def requests(recipient):
    yield pb.IngestEmailRequest(envelope=pb.Envelope(sender="py@example.org", recipients=[recipient, "nobody@nowhere.test"]))
    body = b"Subject: from python\r\n\r\n" + b"line of the body\r\n" * 5000
    for start in range(0, len(body), 65536):
        yield pb.IngestEmailRequest(chunk=body[start:start + 65536])


def main():
    channel = grpc.insecure_channel(sys.argv[2])
    client = rpc.ForwardingStub(channel)
    ingested = client.IngestEmail(requests(sys.argv[3]))
    outcomes = {}
    for force in (False, True):
        reply = client.ReprocessEmail(pb.ReprocessEmailRequest(email_id=ingested.email_id, force=force))
        outcomes["forced" if force else "plain"] = [pb.ReprocessOutcome.Name(r.outcome) for r in reply.results]
    email = client.GetEmail(pb.GetEmailRequest(email_id=ingested.email_id))
    print(json.dumps({
        "email_id": ingested.email_id,
        "accepted": list(ingested.accepted_recipients),
        "refused": [r.recipient for r in ingested.refused_recipients],
        "reprocess": outcomes,
        "size": email.email.size,
    }))


if __name__ == "__main__":
    main()
