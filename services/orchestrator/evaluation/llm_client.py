"""The evaluator's `generate` over the Llm gRPC service: one whole answer or EvaluationFailed."""
from __future__ import annotations

import grpc

from interview.v1 import llm_pb2, llm_pb2_grpc
from services.orchestrator.evaluation.evaluator import EvaluationFailed, Generate


def grpc_generate(stub: llm_pb2_grpc.LlmStub, *, grace_s: float = 10.0) -> Generate:
    """Calls Llm.Generate and returns its final message. The gRPC deadline is the request's own
    timeout plus a grace period, so the service's clearer error arrives before ours."""

    async def generate(req: llm_pb2.GenerateRequest) -> llm_pb2.GenerateFinal:
        timeout = (req.options.timeout_ms / 1000 or 180.0) + grace_s
        final = None
        try:
            async for response in stub.Generate(req, timeout=timeout):
                if response.HasField("final"):
                    final = response.final
        except grpc.aio.AioRpcError as exc:
            raise EvaluationFailed(f"the language model service answered {exc.code().name}: {exc.details()}") from None
        if final is None:
            raise EvaluationFailed("the language model service ended without an answer")
        return final

    return generate
