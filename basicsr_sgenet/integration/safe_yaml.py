"""The one YAML reader of the plugin: standard YAML only, so reading a file never runs code.

PyYAML's full loaders, and BasicSR's ``ordered_yaml()`` loader built on them, turn tags
such as ``!!python/object/apply:os.system [...]`` into calls: opening someone else's
option file would run their command. ``SafeLoader`` here is PyYAML's safe loader (the
C one where libyaml is installed, as BasicSR uses) that keeps the order of mappings,
accepts every standard tag (``!!float 2e-4``, ``!!int``, ``!!str``, ``!!bool``,
``!!null``, ``!!seq``, ``!!map``, ``!!set``, ``!!binary``, ``!!timestamp`` ...), and
refuses any other tag, ``!!python/...`` included, with an OptionError naming the file and
the line, before anything in the file is built.

``patches.install()`` makes BasicSR's own ``ordered_yaml()`` return ``OrderedSafeLoader``,
so BasicSR's option parsing (stock ``basicsr/train.py``, ``python -m basicsr.train``) is
safe too whenever the plugin is loaded.
"""
from collections import OrderedDict

import yaml

from basicsr_sgenet.integration.errors import OptionError

try:  # libyaml's parser, as BasicSR's ordered_yaml() picks it; the tag check is the same
    from yaml import CSafeLoader as _BaseSafeLoader
except ImportError:  # pragma: no cover -- PyYAML without libyaml
    from yaml import SafeLoader as _BaseSafeLoader

STANDARD_TAG_PREFIX = 'tag:yaml.org,2002:'
# Python tags that call or import something; any other non-standard tag is refused too.
_CODE_TAGS = ('python/object', 'python/name', 'python/module')


def short_tag(tag):
    """``tag:yaml.org,2002:float`` -> ``!!float``, as the file spells it."""
    return '!!' + tag[len(STANDARD_TAG_PREFIX):] if tag.startswith(STANDARD_TAG_PREFIX) else tag


class SafeLoader(_BaseSafeLoader):
    """yaml.safe_load's loader: mappings as (ordered) dicts, non-standard tags refused."""

    def construct_undefined(self, node):
        mark = node.start_mark
        where = f'{mark.name}, line {mark.line + 1}' if mark is not None else 'YAML text'
        tag = short_tag(node.tag or '')
        if tag.startswith(tuple('!!' + prefix for prefix in _CODE_TAGS)):
            why = f'the tag {tag} would run code'
        else:
            why = f'the tag {tag} is not a standard YAML tag'
        raise OptionError(f'{where}: {why}; option files may only use standard YAML tags (!!float, !!int, !!str, '
                          '!!bool, !!null, lists and mappings).')


SafeLoader.add_constructor(None, SafeLoader.construct_undefined)


class OrderedSafeLoader(SafeLoader):
    """SafeLoader whose mappings are OrderedDicts, like BasicSR's ``ordered_yaml()`` loader."""

    def construct_ordered_mapping(self, node):
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)  # merge keys (<<: *base), as safe_load does
        return OrderedDict(self.construct_pairs(node))


OrderedSafeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                                  OrderedSafeLoader.construct_ordered_mapping)


def load(stream, loader=SafeLoader):
    """The document in ``stream`` (text, bytes or an open file); OptionError for a tag
    that is not standard YAML, yaml.YAMLError for text that is not YAML."""
    return yaml.load(stream, Loader=loader)


def load_file(path, loader=SafeLoader):
    """The document in the file ``path`` (see ``load``)."""
    with open(path, encoding='utf-8') as f:
        return load(f, loader)
