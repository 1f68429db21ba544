"""Discovers mailfwd's gRPC API the way Python tools do, with no .proto file:
grpcio-reflection's ProtoReflectionDescriptorDatabase, which speaks only
grpc.reflection.v1alpha.

usage: reflection_client.py HOST:PORT
Prints one JSON object: the services listed, and the methods of mailfwd.v1.Forwarding.
"""
import json
import sys

import grpc
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


def main():
    channel = grpc.insecure_channel(sys.argv[1])
    database = ProtoReflectionDescriptorDatabase(channel)
    services = list(database.get_services())
    pool = DescriptorPool(database)
    forwarding = pool.FindServiceByName("mailfwd.v1.Forwarding")
    print(json.dumps({
        "services": services,
        "forwarding_methods": [method.name for method in forwarding.methods],
    }))


if __name__ == "__main__":
    main()
