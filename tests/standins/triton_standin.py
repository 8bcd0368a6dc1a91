"""Stand-in for a Triton Inference Server serving a decoupled LLM the way TecoInferenceEngine /
FasterTransformer do. A real gRPC server on 127.0.0.1 (random port) built from tritonclient's own generated
protos; it implements the calls the client makes (ServerLive, ServerReady, ModelReady, ModelMetadata,
ModelConfig, ModelStreamInfer) and validates requests like Triton does (unknown model, undeclared input,
wrong datatype are errors).

It answers with a deterministic text derived from the prompt (`default_reply`), streaming one response per
token:
- non-ensemble: `output_ids` [1, 1, L] UINT32 + `sequence_length`; cumulative like FasterTransformer (the
  prompt ids followed by the ids generated so far) or, with `cumulative=False`, only the new id; the reply is
  followed by the `<|im_end|>` token and the end id, as a model would produce them;
- ensemble: `text_output` BYTES; cumulative text decoded with errors="replace" (so a character cut between
  tokens shows as U+FFFD until completed, as FasterTransformer's postprocessing does) or raw byte deltas.

Faults: `refuse` is a closed port (`closed_port()`); `stall_s` holds the first token back (`stall_requests`
limits that to the first N requests: a server that recovers); `break_after` fails the stream after k tokens
(`break_mode` "error": an error response, "abort": the RPC is aborted); `token_delay_s` spaces tokens out.
"""

from __future__ import annotations

import os

# gRPC core logs a GOAWAY at INFO level whenever a stand-in stops under a live channel: noise in test output.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import threading  # noqa: E402
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field

import grpc
import numpy as np
from tritonclient.grpc import model_config_pb2, service_pb2, service_pb2_grpc
from tritonclient.utils import deserialize_bytes_tensor, serialize_byte_tensor, triton_to_np_dtype

from . import default_reply

QWEN_IM_END = "<|im_end|>"

# (name, datatype, shape as metadata reports it: batch dimension first) - FasterTransformer style.
NON_ENSEMBLE_INPUTS = (
    ("input_ids", "UINT32", (-1, -1)),
    ("input_lengths", "UINT32", (-1, 1)),
    ("request_output_len", "UINT32", (-1, -1)),
    ("runtime_top_k", "UINT32", (-1, 1)),
    ("runtime_top_p", "FP32", (-1, 1)),
    ("temperature", "FP32", (-1, 1)),
    ("len_penalty", "FP32", (-1, 1)),
    ("repetition_penalty", "FP32", (-1, 1)),
    ("start_id", "UINT32", (-1, 1)),
    ("end_id", "UINT32", (-1, 1)),
    ("beam_width", "UINT32", (-1, 1)),
    ("random_seed", "UINT64", (-1, 1)),
    ("stop_words_list", "INT32", (-1, 2, -1)),
    ("bad_words_list", "INT32", (-1, 2, -1)),
)
NON_ENSEMBLE_OUTPUTS = (("output_ids", "UINT32", (-1, -1, -1)), ("sequence_length", "UINT32", (-1, -1)))
ENSEMBLE_INPUTS = (
    ("text_input", "BYTES", (-1, 1)),
    ("request_output_len", "UINT32", (-1, 1)),
    ("runtime_top_k", "UINT32", (-1, 1)),
    ("runtime_top_p", "FP32", (-1, 1)),
    ("temperature", "FP32", (-1, 1)),
    ("len_penalty", "FP32", (-1, 1)),
    ("repetition_penalty", "FP32", (-1, 1)),
    ("end_id", "UINT32", (-1, 1)),
    ("stop_words", "BYTES", (-1, -1)),
)
ENSEMBLE_OUTPUTS = (("text_output", "BYTES", (-1, -1)),)
REQUIRED = {"non-ensemble": ("input_ids", "input_lengths", "request_output_len"), "ensemble": ("text_input",)}


@dataclass
class RecordedRequest:
    model_name: str
    model_version: str
    tensors: dict[str, np.ndarray]
    prompt: str


@dataclass
class TritonStandin:
    """Start with `with TritonStandin(...) as server:`; `server.address` is host:port."""

    mode: str = "non-ensemble"
    tokenizer: object | None = None                # tecorag Tokenizer; needed for non-ensemble
    model_name: str = "Qwen-7B-Chat"
    end_id: int = 151643
    cumulative: bool = True
    echo_prompt: bool = True                       # cumulative output starts with the prompt (FasterTransformer)
    final_flag: bool = True                        # mark the last response with triton_final_response
    reply: Callable[[str], str] = default_reply
    ensemble_piece_bytes: int = 2                  # ensemble: bytes per streamed "token" (cuts characters)
    stall_s: float = 0.0
    stall_requests: int | None = None              # stall only the first N requests (None: all)
    break_after: int | None = None
    break_mode: str = "error"
    token_delay_s: float = 0.0
    requests: list[RecordedRequest] = field(default_factory=list)
    max_active_streams: int = 0

    def __post_init__(self) -> None:
        self._server: grpc.Server | None = None
        self._executor: futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._active = 0
        self.port = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> TritonStandin:
        self._executor = futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="triton-standin")
        self._server = grpc.server(self._executor)
        service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(_Servicer(self), self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait()
            self._executor.shutdown(wait=False, cancel_futures=True)

    # -- model description ---------------------------------------------------------------------------

    @property
    def inputs(self) -> tuple[tuple[str, str, tuple[int, ...]], ...]:
        return NON_ENSEMBLE_INPUTS if self.mode == "non-ensemble" else ENSEMBLE_INPUTS

    @property
    def outputs(self) -> tuple[tuple[str, str, tuple[int, ...]], ...]:
        return NON_ENSEMBLE_OUTPUTS if self.mode == "non-ensemble" else ENSEMBLE_OUTPUTS

    # -- bookkeeping -----------------------------------------------------------------------------------

    def _enter_stream(self) -> None:
        with self._lock:
            self._active += 1
            self.max_active_streams = max(self.max_active_streams, self._active)

    def _leave_stream(self) -> None:
        with self._lock:
            self._active -= 1

    def record(self, request: RecordedRequest) -> int:
        """Keep the request; return its 1-based number."""
        with self._lock:
            self.requests.append(request)
            return len(self.requests)


def _decode_inputs(request: service_pb2.ModelInferRequest) -> dict[str, np.ndarray]:
    tensors = {}
    for index, tensor in enumerate(request.inputs):
        raw = request.raw_input_contents[index]
        if tensor.datatype == "BYTES":
            array = deserialize_bytes_tensor(raw)
        else:
            array = np.frombuffer(raw, dtype=triton_to_np_dtype(tensor.datatype))
        tensors[tensor.name] = array.reshape(list(tensor.shape))
    return tensors


def _tensor(name: str, datatype: str, array: np.ndarray) -> tuple[service_pb2.ModelInferResponse.InferOutputTensor, bytes]:
    output = service_pb2.ModelInferResponse.InferOutputTensor(name=name, datatype=datatype, shape=list(array.shape))
    raw = serialize_byte_tensor(array).item() if datatype == "BYTES" else array.tobytes()
    return output, raw


class _Servicer(service_pb2_grpc.GRPCInferenceServiceServicer):
    def __init__(self, standin: TritonStandin):
        self.standin = standin

    def ServerLive(self, request, context):
        return service_pb2.ServerLiveResponse(live=True)

    def ServerReady(self, request, context):
        return service_pb2.ServerReadyResponse(ready=True)

    def ModelReady(self, request, context):
        return service_pb2.ModelReadyResponse(ready=request.name == self.standin.model_name)

    def _check_model(self, name: str, context: grpc.ServicerContext) -> None:
        if name != self.standin.model_name:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Request for unknown model: '{name}' is not found")

    def ModelMetadata(self, request, context):
        self._check_model(request.name, context)
        tensor = service_pb2.ModelMetadataResponse.TensorMetadata
        return service_pb2.ModelMetadataResponse(
            name=self.standin.model_name, versions=["1"], platform="teco_inferenceenginelm",
            inputs=[tensor(name=n, datatype=d, shape=list(s)) for n, d, s in self.standin.inputs],
            outputs=[tensor(name=n, datatype=d, shape=list(s)) for n, d, s in self.standin.outputs],
        )

    def ModelConfig(self, request, context):
        self._check_model(request.name, context)
        def dtype(datatype: str) -> int:
            return model_config_pb2.DataType.Value("TYPE_STRING" if datatype == "BYTES" else f"TYPE_{datatype}")
        config = model_config_pb2.ModelConfig(
            name=self.standin.model_name, backend="teco_inferenceenginelm", max_batch_size=1024,
            input=[model_config_pb2.ModelInput(name=n, data_type=dtype(d), dims=list(s[1:]), optional=n not in REQUIRED[self.standin.mode])
                   for n, d, s in self.standin.inputs],
            output=[model_config_pb2.ModelOutput(name=n, data_type=dtype(d), dims=list(s[1:])) for n, d, s in self.standin.outputs],
            model_transaction_policy=model_config_pb2.ModelTransactionPolicy(decoupled=True),
        )
        return service_pb2.ModelConfigResponse(config=config)

    def ModelStreamInfer(self, request_iterator, context):
        self.standin._enter_stream()
        try:
            for request in request_iterator:
                yield from self._answer(request, context)
        finally:
            self.standin._leave_stream()

    # -- one request -----------------------------------------------------------------------------------

    def _validate(self, request: service_pb2.ModelInferRequest) -> str | None:
        standin = self.standin
        if request.model_name != standin.model_name:
            return f"Request for unknown model: '{request.model_name}' is not found"
        declared = {name: datatype for name, datatype, _ in standin.inputs}
        for tensor in request.inputs:
            if tensor.name not in declared:
                return f"unexpected inference input '{tensor.name}' for model '{standin.model_name}'"
            if tensor.datatype != declared[tensor.name]:
                return (f"inference input '{tensor.name}' data-type is '{tensor.datatype}', but model "
                        f"'{standin.model_name}' expects '{declared[tensor.name]}'")
        sent = {tensor.name for tensor in request.inputs}
        missing = [name for name in REQUIRED[standin.mode] if name not in sent]
        if missing:
            return f"expected inputs {missing} for model '{standin.model_name}'"
        return None

    def _answer(self, request: service_pb2.ModelInferRequest, context: grpc.ServicerContext) -> Iterator:
        standin = self.standin
        problem = self._validate(request)
        if problem:
            yield service_pb2.ModelStreamInferResponse(error_message=problem)
            return
        tensors = _decode_inputs(request)
        max_new = int(tensors["request_output_len"].reshape(-1)[0]) if "request_output_len" in tensors else 1024
        if standin.mode == "non-ensemble":
            prompt_ids = [int(i) for i in tensors["input_ids"].reshape(-1)]
            prompt = standin.tokenizer.decode(prompt_ids)
            steps = self._id_steps(prompt, prompt_ids, max_new)
        else:
            prompt = tensors["text_input"].reshape(-1)[0].decode("utf-8")
            steps = self._text_steps(prompt, max_new)
        request_number = standin.record(RecordedRequest(request.model_name, request.model_version, tensors, prompt))

        stalls = standin.stall_requests is None or request_number <= standin.stall_requests
        stall_until = time.monotonic() + (standin.stall_s if stalls else 0.0)
        while time.monotonic() < stall_until and context.is_active():
            time.sleep(0.02)
        if not context.is_active():
            return
        for index, (outputs, is_last) in enumerate(steps):
            if standin.break_after is not None and index >= standin.break_after:
                if standin.break_mode == "abort":
                    context.abort(grpc.StatusCode.INTERNAL, "stand-in: model instance crashed")
                yield service_pb2.ModelStreamInferResponse(error_message="stand-in: generation failed mid-stream")
                return
            if standin.token_delay_s:
                time.sleep(standin.token_delay_s)
            response = service_pb2.ModelInferResponse(model_name=standin.model_name, model_version="1", id=request.id)
            for output, raw in outputs:
                response.outputs.append(output)
                response.raw_output_contents.append(raw)
            if is_last and standin.final_flag:
                response.parameters["triton_final_response"].bool_param = True
            yield service_pb2.ModelStreamInferResponse(infer_response=response)

    def _id_steps(self, prompt: str, prompt_ids: list[int], max_new: int) -> list[tuple[list, bool]]:
        standin = self.standin
        tokenizer = standin.tokenizer
        generated = tokenizer.encode(standin.reply(prompt)) + tokenizer.encode(QWEN_IM_END) + [standin.end_id]
        generated = generated[:max_new]
        steps = []
        for count in range(1, len(generated) + 1):
            if standin.cumulative:
                ids = (prompt_ids if standin.echo_prompt else []) + generated[:count]
            else:
                ids = generated[count - 1:count]
            array = np.array([[ids]], dtype=np.uint32)
            length = np.array([[len(ids)]], dtype=np.uint32)
            steps.append(([_tensor("output_ids", "UINT32", array), _tensor("sequence_length", "UINT32", length)],
                          count == len(generated)))
        return steps

    def _text_steps(self, prompt: str, max_new: int) -> list[tuple[list, bool]]:
        standin = self.standin
        data = (standin.reply(prompt) + QWEN_IM_END).encode("utf-8")
        size = standin.ensemble_piece_bytes
        pieces = [data[i:i + size] for i in range(0, len(data), size)][:max_new]
        steps = []
        for count in range(1, len(pieces) + 1):
            if standin.cumulative:
                text = (prompt if standin.echo_prompt else "") + b"".join(pieces[:count]).decode("utf-8", errors="replace")
                payload = text.encode("utf-8")
            else:
                payload = pieces[count - 1]
            array = np.array([[payload]], dtype=object)
            steps.append(([_tensor("text_output", "BYTES", array)], count == len(pieces)))
        return steps
