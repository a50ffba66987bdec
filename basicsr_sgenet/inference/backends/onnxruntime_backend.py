"""ONNX Runtime on an exported model (``python -m basicsr_sgenet.export``): runs without
PyTorch's training stack on any machine ONNX Runtime supports, in fp32 (the precision the
model was exported in); CUDA with onnxruntime-gpu."""
import numpy as np
import torch

from basicsr_sgenet.inference.backends import Backend, Plan, register
from basicsr_sgenet.inference.onnx_model import (EXTRA_HINT, check_image_model, import_onnx_packages,
                                                 model_size_multiple, read_metadata)
from basicsr_sgenet.inference.runtime import Restorer
from basicsr_sgenet.integration.errors import InferenceError, first_line


@register
class OnnxRuntimeBackend(Backend):
    name = 'onnxruntime'
    label = 'ONNX Runtime'
    rank = 2  # under --backend auto, OpenVINO first where installed (faster on every CPU measured)
    takes_model = True
    benchmark_modes = ('onnxruntime',)

    def missing_package(self):
        try:
            import_onnx_packages('--backend onnxruntime')
        except ImportError as err:
            return str(err)
        return None

    def plan(self, args, device):
        _, ort = import_onnx_packages(f'--backend {self.name}')
        if args.device == 'auto' and 'CUDAExecutionProvider' not in ort.get_available_providers():
            device = torch.device('cpu')  # a CPU-only onnxruntime on a machine with a GPU
        if args.precision not in ('auto', 'fp32'):
            raise InferenceError(f'--precision {args.precision} is not available with --backend onnxruntime: it runs '
                                 'the exported model in fp32 (--backend openvino or pytorch for bf16)')
        return Plan(self.name, 'fp32', device, model=args.model)

    def restorer(self, plan, spec):
        return OnnxRuntimeRestorer(plan.model, plan.device), model_size_multiple(read_metadata(plan.model))

    def benchmark_problem(self, mode, precision, device):
        if device.type != 'cpu':
            return f'{mode} is benchmarked on the CPU only'
        if precision != 'fp32':
            return 'ONNX Runtime runs the exported model in fp32 only'
        if self.missing_package():
            return f'onnxruntime not installed ({EXTRA_HINT})'
        return None

    def benchmark_runner(self, mode, network, precision, device, onnx_path=None, threads=0):
        return OnnxRuntimeRestorer(onnx_path, threads=threads).forward


def ort_session(path, threads=0, device=None):
    """An ONNX Runtime session for ``path`` with every graph optimisation on.

    ``threads`` 0 keeps ONNX Runtime's default (one per physical core). ``device``: a
    torch.device; CUDA needs onnxruntime-gpu (the CUDA execution provider).
    """
    _, ort = import_onnx_packages('--backend onnxruntime')
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: no per-node warnings on the console
    if threads:
        options.intra_op_num_threads = threads
    providers = ['CPUExecutionProvider']
    if device is not None and device.type == 'cuda':
        if 'CUDAExecutionProvider' not in ort.get_available_providers():
            raise InferenceError(f'--device {device} with --backend onnxruntime needs onnxruntime-gpu (this '
                                 'onnxruntime has no CUDA provider); use --device cpu')
        providers = [('CUDAExecutionProvider', {'device_id': device.index or 0})] + providers
    try:
        return ort.InferenceSession(path, options, providers=providers)
    except Exception as err:  # noqa: BLE001  (onnxruntime raises its own exception types)
        raise InferenceError(f'ONNX Runtime cannot load {path}: {first_line(err)}') from None


class OnnxRuntimeRestorer(Restorer):
    """Runs an exported model with ONNX Runtime (fp32, the precision it was exported in)."""

    backend = 'onnxruntime'

    def __init__(self, path, device=None, threads=0):
        self.device = device or torch.device('cpu')
        self.session = ort_session(path, threads, self.device)
        check_image_model(self.session.get_inputs(), path)
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, batch):
        array = np.ascontiguousarray(batch.detach().to('cpu', torch.float32).numpy())
        try:
            output = self.session.run(None, {self.input_name: array})[0]
        except Exception as err:  # noqa: BLE001  (onnxruntime's exceptions derive from Exception only)
            message = first_line(err)
            if any(sign in message.lower() for sign in ('allocate', 'bad_alloc', 'out of memory')):
                # Phrased like PyTorch's CPU allocation failure, so the CLI says how to avoid it.
                raise RuntimeError(f"can't allocate memory: {message}") from None
            raise InferenceError(f'ONNX Runtime failed on a {tuple(array.shape)} input: {message}') from None
        return torch.from_numpy(output)
