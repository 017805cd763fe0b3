"""One unary gRPC call with grpcio (the Python client), without generated stubs: the method
path and the request's protobuf bytes (hex) come from the command line. Prints OK, or the status
code's name and details."""
import sys

import grpc

address, method, request = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3])
with grpc.insecure_channel(address) as channel:
    call = channel.unary_unary(method)
    try:
        call(request, timeout=10)
        print("OK")
    except grpc.RpcError as error:
        print(error.code().name, error.details())
