"""Imports every ``*_model.py`` module here so it registers with BasicSR's registries."""
from os import path as osp

from basicsr_sgenet._autoimport import import_modules_with_suffix

_modules = import_modules_with_suffix(__name__, osp.dirname(__file__), '_model')
