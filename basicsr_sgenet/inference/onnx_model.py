"""The exported ONNX file as the exporter writes it and the ONNX backends read it: its
input/output names, the metadata it carries (arch, size multiple, ...), and the optional
packages it needs (``pip install -e .[onnx]``; importing this module needs none of them)."""
import os


from basicsr_sgenet.integration.errors import DependencyError, InferenceError, first_line

# Keys of the metadata the exporter writes into the ONNX file (``metadata_props``).
METADATA_PREFIX = 'basicsr_sgenet.'
INPUT_NAME = 'image'
OUTPUT_NAME = 'restored'
EXTRA_HINT = 'pip install -e ".[onnx]" (or pip install onnx onnxruntime)'


def import_extra(modules, purpose, extra, hint):
    """The optional ``modules`` (names), imported, or DependencyError in one line naming
    the extra that brings them and how to install it."""
    import importlib
    try:
        return tuple(importlib.import_module(name) for name in modules)
    except ImportError as err:
        raise DependencyError(f'{purpose} needs the {extra} extra, which is not installed ({err.name or err} is '
                              f'missing): {hint}') from None


def import_onnx_packages(purpose):
    """(onnx, onnxruntime) modules, or DependencyError in one line naming the extra."""
    return import_extra(('onnx', 'onnxruntime'), purpose, 'onnx', EXTRA_HINT)


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


def check_image_model(inputs, path):
    """Refuse models that do not take one (N, 3, H, W) image."""
    if len(inputs) != 1 or len(inputs[0].shape) != 4 or inputs[0].shape[1] not in (3, '3'):
        shapes = ', '.join(f'{tensor.name}{list(tensor.shape)}' for tensor in inputs)
        raise InferenceError(f'--model {path} does not take one (N, 3, H, W) image (its inputs: {shapes})')
