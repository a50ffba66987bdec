"""Image sizes on the command line: ``HEIGHTxWIDTH``, as export, benchmark and compare take them."""
from basicsr_sgenet.integration.errors import InferenceError


def parse_size(text, argument='--size'):
    """'HEIGHTxWIDTH' -> (height, width), or InferenceError naming ``argument``."""
    try:
        height, width = (int(part) for part in text.lower().split('x'))
    except ValueError:
        raise InferenceError(f'{argument}: {text!r} is not HEIGHTxWIDTH (e.g. 720x1280)') from None
    if height < 1 or width < 1:
        raise InferenceError(f'{argument}: {text!r} must be positive')
    return height, width
