"""Generated gRPC/protobuf stubs for protos/interview (do not edit; `make proto` regenerates)."""
