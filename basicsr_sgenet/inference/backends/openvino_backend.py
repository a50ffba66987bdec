"""OpenVINO's CPU plugin on an exported model (it reads the ONNX file directly): the
fastest CPU path measured, f32 or bf16 (only where the CPU has native bf16, as for PyTorch)."""
import numpy as np
import torch

from basicsr_sgenet.inference.backends import Backend, Plan, auto_precision, cpu_for, register
from basicsr_sgenet.inference.onnx_model import check_image_model, import_extra, model_size_multiple, read_metadata
from basicsr_sgenet.inference.runtime import Restorer, check_precision
from basicsr_sgenet.integration.errors import InferenceError, first_line

OPENVINO_HINT = 'pip install -e ".[openvino]" (or pip install onnx openvino)'


@register
class OpenVinoBackend(Backend):
    name = 'openvino'
    label = 'OpenVINO'
    rank = 1
    takes_model = True
    benchmark_modes = ('openvino',)

    def missing_package(self):
        try:
            import_openvino()
        except ImportError as err:
            return str(err)
        return None

    def plan(self, args, device):
        import_openvino()
        device = cpu_for(self.name, args.device, device)
        precision, reason = auto_precision(args.precision)
        if precision == 'fp16':
            raise InferenceError('--precision fp16 is not available with --backend openvino (CPU): use fp32 or bf16')
        check_precision(precision, device)
        return Plan(self.name, precision, device, model=args.model, reason=reason)

    def restorer(self, plan, spec):
        return OpenVinoRestorer(plan.model, plan.precision), model_size_multiple(read_metadata(plan.model))

    def benchmark_problem(self, mode, precision, device):
        if device.type != 'cpu':
            return f'{mode} is benchmarked on the CPU only'
        if self.missing_package():
            return f'openvino not installed ({OPENVINO_HINT})'
        return None

    def benchmark_runner(self, mode, network, precision, device, onnx_path=None, threads=0):
        return OpenVinoRestorer(onnx_path, precision, threads=threads).forward


def import_openvino():
    """(onnx, openvino) modules (onnx reads the exporter's metadata), or DependencyError."""
    return import_extra(('onnx', 'openvino'), '--backend openvino', 'openvino', OPENVINO_HINT)


class OpenVinoRestorer(Restorer):
    """Runs an exported model with OpenVINO's CPU plugin (it reads ONNX directly).

    ``precision`` 'fp32' pins OpenVINO's inference precision to f32; 'bf16' lets it run
    bf16 (only offered where the CPU has native bf16, as for PyTorch).
    """

    backend = 'openvino'

    def __init__(self, path, precision='fp32', threads=0):
        _, ov = import_openvino()
        self.device = torch.device('cpu')
        config = {'INFERENCE_PRECISION_HINT': 'bf16' if precision == 'bf16' else 'f32',
                  'PERFORMANCE_HINT': 'LATENCY'}
        if threads:
            config['INFERENCE_NUM_THREADS'] = threads
        try:
            core = ov.Core()
            model = core.read_model(path)
            self.compiled = core.compile_model(model, 'CPU', config)
        except Exception as err:  # noqa: BLE001  (OpenVINO raises RuntimeError subclasses of its own)
            raise InferenceError(f'OpenVINO cannot load {path}: {first_line(err)}') from None
        check_image_model([_OpenVinoPort(port) for port in self.compiled.inputs], path)
        self.request = self.compiled.create_infer_request()

    def forward(self, batch):
        array = np.ascontiguousarray(batch.detach().to('cpu', torch.float32).numpy())
        try:
            output = self.request.infer({0: array})[self.compiled.outputs[0]]
        except Exception as err:  # noqa: BLE001  (OpenVINO raises RuntimeError subclasses of its own)
            message = first_line(err)
            if any(sign in message.lower() for sign in ('allocate', 'bad_alloc', 'out of memory')):
                raise RuntimeError(f"can't allocate memory: {message}") from None
            raise InferenceError(f'OpenVINO failed on a {tuple(array.shape)} input: {message}') from None
        return torch.from_numpy(np.array(output, dtype=np.float32))


class _OpenVinoPort:
    """An OpenVINO input port with the ``name``/``shape`` an ONNX Runtime input has."""

    def __init__(self, port):
        self.name = port.get_any_name()
        shape = port.get_partial_shape()
        self.shape = [dim.get_length() if dim.is_static else '?' for dim in shape] if shape.rank.is_static else []
