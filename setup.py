"""basicsr-sgenet: SGENet for BasicSR. Install with ``pip install -c constraints.txt -e .``."""
import os

import sys
import sysconfig

from setuptools import find_packages, setup
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))


def site_packages_relative_to_prefix():
    """Where ``basicsr_sgenet_autoload.pth`` goes: the root of site-packages, the only place
    Python reads .pth files from. Given relative to the install prefix, as data_files are;
    unlike build_py outputs, data files land there in editable installs too."""
    return os.path.relpath(sysconfig.get_path('purelib'), sys.prefix)


class DistributionWithEditableDataFiles(Distribution):
    """setuptools' editable_wheel installs data files only if ``distribution.has_data()``
    is true, but Distribution only defines ``has_data_files()``: without this alias
    ``pip install -e .`` silently drops the .pth above."""

    def has_data(self):
        return self.has_data_files()


def read_readme():
    with open(os.path.join(HERE, 'README.md')) as f:
        return f.read()


def read_version():
    with open(os.path.join(HERE, 'basicsr_sgenet', '__init__.py')) as f:
        for line in f:
            if line.startswith('__version__'):
                return line.split('=')[1].strip().strip("'")
    raise RuntimeError('__version__ not found in basicsr_sgenet/__init__.py')


ONNX_REQUIREMENTS = ['onnx>=1.16', 'onnxruntime>=1.17']
OPENVINO_REQUIREMENTS = ['onnx>=1.16', 'openvino>=2024.0']
# The web page (python -m basicsr_sgenet.app): Gradio 6 (launch() takes the page's css/head).
APP_REQUIREMENTS = ['gradio>=6.0']

setup(
    name='basicsr-sgenet',
    version=read_version(),
    description='SGENet (Spatially Guided Enhancement Network) motion deblurring as a BasicSR plugin',
    long_description=read_readme(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.9',
    packages=find_packages(include=['basicsr_sgenet', 'basicsr_sgenet.*']),
    py_modules=['basicsr_sgenet_autoload'],
    # Lets BasicSR's stock entry points find the plugin: see basicsr_sgenet_autoload.py.
    distclass=DistributionWithEditableDataFiles,
    data_files=[(site_packages_relative_to_prefix(), ['basicsr_sgenet_autoload.pth'])],
    # tensorboard comes with basicsr (as its tb-nightly dependency, which ships the
    # `tensorboard` module). Asking for `tensorboard` as well would install a second
    # distribution of the same module, which breaks when either is uninstalled.
    install_requires=[
        'torch>=2.0',
        'torchvision',
        'basicsr>=1.4.2',
        'lmdb',
        'numpy',
        'opencv-python',
        'Pillow',  # EXIF orientation, ICC profiles and truncated-JPEG checks of deblur's inputs
        'pyyaml',
        'scikit-image',  # the demo's bundled sample photos
        'tqdm',
    ],
    # onnx: ONNX export (python -m basicsr_sgenet.export) and the deblur CLI's ONNX Runtime
    # backend; openvino: its OpenVINO backend (the fastest CPU path measured). Optional, so
    # a plain install stays PyTorch + BasicSR only; the tests cover both, so the test extra
    # brings them too. app: the web page (python -m basicsr_sgenet.app). plots: the figures of
    # studies, compare.py and benchmark.py (each is skipped with a message without it).
    extras_require={
        'onnx': ONNX_REQUIREMENTS,
        'openvino': OPENVINO_REQUIREMENTS,
        'plots': ['matplotlib'],
        'app': APP_REQUIREMENTS,
        # selenium drives the headless Chromium of the page's browser tests (Debian's chromium and
        # chromium-driver packages, which .ci/run installs; the tests skip without them).
        'test': ['pytest>=7', 'matplotlib', 'selenium>=4.10'] + ONNX_REQUIREMENTS + OPENVINO_REQUIREMENTS[1:] +
        APP_REQUIREMENTS,
    },
    entry_points={
        'console_scripts': [
            'sgenet-train=basicsr_sgenet.train:main',
            'sgenet-test=basicsr_sgenet.test:main',
            'sgenet-deblur=basicsr_sgenet.deblur:main',
            'sgenet-app=basicsr_sgenet.app.__main__:main',
        ],
    },
    classifiers=[
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Image Recognition',
    ],
)
