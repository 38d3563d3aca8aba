#!/usr/bin/env python3
"""Python's gRPC (grpcio: C-core's HTTP/2, a third implementation beside
grpc-go's etcdctl and grpc-swift) against `ballast store serve`, with etcd's
messages encoded by hand so that no stubs are needed. Prints one JSON object
per step; EtcdAPITests/PythonGRPCTests.swift asserts on them.

Usage: etcd_grpc_client.py HOST:PORT
"""
import concurrent.futures
import json
import queue
import sys

import grpc


def varint(n):
    out = bytearray()
    while True:
        low = n & 0x7F
        n >>= 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def field(number, data):
    """A length-delimited protobuf field."""
    return varint(number << 3 | 2) + varint(len(data)) + data


def step(name, **values):
    print(json.dumps({"step": name, **values}), flush=True)


def main(target):
    channel = grpc.insecure_channel(target)
    put = channel.unary_unary("/etcdserverpb.KV/Put")
    get = channel.unary_unary("/etcdserverpb.KV/Range")

    put(field(1, b"py/a") + field(2, b"hello"), timeout=10)  # PutRequest{key, value}
    step("range", found=b"hello" in get(field(1, b"py/a"), timeout=10))

    big = bytes(range(256)) * 400  # 100 KiB: several DATA frames each way
    put(field(1, b"py/big") + field(2, big), timeout=10)
    answer = get(field(1, b"py/big"), timeout=10)
    step("big", size=len(answer), intact=big in answer)

    try:
        channel.unary_unary("/etcdserverpb.Nope/Call")(b"", timeout=10)
        step("unknown", code="OK", details="")
    except grpc.RpcError as error:
        step("unknown", code=error.code().name, details=error.details())

    finished = queue.Queue()

    def watch_requests():
        yield field(1, field(1, b"py/w"))  # WatchRequest{create_request{key}}
        finished.get()

    stream = channel.stream_stream("/etcdserverpb.Watch/Watch")(watch_requests(), timeout=30)
    created = next(stream)
    put(field(1, b"py/w") + field(2, b"event!"), timeout=10)
    event = next(stream)
    step("watch", created=len(created) > 0, event=b"event!" in event)
    finished.put(None)
    stream.cancel()

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: get(field(1, b"py/a"), timeout=10), range(500)))
    step("concurrent", calls=len(answers), found=sum(b"hello" in a for a in answers))
    channel.close()
    step("done")


if __name__ == "__main__":
    main(sys.argv[1])
