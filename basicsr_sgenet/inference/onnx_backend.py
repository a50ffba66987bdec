"""Running an exported ONNX model (``python -m basicsr_sgenet.export``) with ONNX Runtime,
or with OpenVINO's CPU plugin reading the same file.

Why a second backend: an ONNX file runs without PyTorch, BasicSR or this package's
training stack, on any machine ONNX Runtime supports; the deblur CLI keeps its tiling,
image IO and progress bars whichever backend computes the pixels.

The packages are optional extras (``pip install -e .[onnx]``, ``.[openvino]``); importing
this module needs none of them, only creating a restorer does.
"""
import os

import numpy as np
import torch

from basicsr_sgenet.integration.errors import DependencyError, InferenceError, first_line
from basicsr_sgenet.inference.runtime import Restorer

# Keys of the metadata the exporter writes into the ONNX file (``metadata_props``).
METADATA_PREFIX = 'basicsr_sgenet.'
INPUT_NAME = 'image'
OUTPUT_NAME = 'restored'
EXTRA_HINT = 'pip install -e ".[onnx]" (or pip install onnx onnxruntime)'
OPENVINO_HINT = 'pip install -e ".[openvino]" (or pip install onnx openvino)'


def import_onnx_packages(purpose):
    """(onnx, onnxruntime) modules, or DependencyError in one line naming the extra."""
    try:
        import onnx
        import onnxruntime
    except ImportError as err:
        raise DependencyError(f'{purpose} needs the onnx extra, which is not installed ({err.name or err} is '
                              f'missing): {EXTRA_HINT}') from None
    return onnx, onnxruntime


def import_openvino():
    """(onnx, openvino) modules (onnx reads the exporter's metadata), or DependencyError."""
    try:
        import onnx
        import openvino
    except ImportError as err:
        raise DependencyError(f'--backend openvino needs the openvino extra, which is not installed '
                              f'({err.name or err} is missing): {OPENVINO_HINT}') from None
    return onnx, openvino


def read_metadata(path):
    """The exporter's metadata of the ONNX file at ``path`` as a dict ({} for files
    exported by other tools); InferenceError naming the file if it is not ONNX."""
    try:
        import onnx
    except ImportError:
        raise DependencyError(f'Reading an ONNX model needs the onnx package: {EXTRA_HINT}') from None
    if not os.path.isfile(path):
        raise InferenceError(f'--model {path} does not exist')
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as err:  # noqa: BLE001  (protobuf raises several types for a non-ONNX file)
        raise InferenceError(f'--model {path} is not an ONNX model ({first_line(err)})') from None
    return {prop.key[len(METADATA_PREFIX):]: prop.value for prop in model.metadata_props
            if prop.key.startswith(METADATA_PREFIX)}


def model_size_multiple(metadata):
    """The size grid the exported network computes on (for tile checks); 1 if unknown."""
    try:
        return max(1, int(metadata.get('size_multiple', 1)))
    except ValueError:
        return 1


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


def check_image_model(inputs, path):
    """Refuse models that do not take one (N, 3, H, W) image."""
    if len(inputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].shape[1] not in (3, '3'):
        shapes = ', '.join(f'{tensor.name}{list(tensor.shape)}' for tensor in inputs)
        raise InferenceError(f'--model {path} does not take one (N, 3, H, W) image (its inputs: {shapes})')


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
