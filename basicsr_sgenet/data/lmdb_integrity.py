"""Telling a complete LMDB from a damaged one *before* it is opened.

LMDB maps ``data.mdb`` into memory; reading a page past the end of a truncated file
kills the process with SIGBUS (exit 135, no message), in the lmdb module, in BasicSR's
data loader and in our preparation scripts alike. So the file's size is checked against
what its own header records first: each of the two meta pages at the start of the file
holds the page size and the last page used by its transaction; the newer one must lie
entirely within the file.
"""
import os
import struct

_MAGIC = 0xBEEFC0DE
# Offsets inside a meta page (64-bit LMDB): 16-byte page header, then MDB_meta with its
# magic and version, mapping address and size, two 48-byte MDB_db records (the first
# one's md_pad holds the page size), the last page number and the transaction id.
_MAGIC_AT, _PAGE_SIZE_AT, _LAST_PAGE_AT = 16, 40, 136
_META_SIZE = 152


def _read_meta(handle, offset):
    handle.seek(offset)
    page = handle.read(_META_SIZE)
    if len(page) < _META_SIZE or struct.unpack_from('<I', page, _MAGIC_AT)[0] != _MAGIC:
        return None
    page_size = struct.unpack_from('<I', page, _PAGE_SIZE_AT)[0]
    last_page, txn_id = struct.unpack_from('<QQ', page, _LAST_PAGE_AT)
    return page_size, last_page, txn_id


def lmdb_problem(path):
    """Why the LMDB folder ``path`` cannot be read safely (missing, not an LMDB,
    truncated), or None if its data file is complete."""
    data_file = os.path.join(path, 'data.mdb')
    if not os.path.isfile(data_file):
        return f'{path} is not an LMDB (no data.mdb)'
    try:
        size = os.path.getsize(data_file)
        with open(data_file, 'rb') as handle:
            first = _read_meta(handle, 0)
            if first is None:
                return f'{data_file} is not an LMDB data file or is damaged (no LMDB header)'
            page_size = first[0]
            if page_size < 512 or page_size & (page_size - 1):
                return f'{data_file} is damaged (page size {page_size} in its header)'
            second = _read_meta(handle, page_size)
    except OSError as err:
        return f'{data_file} cannot be read ({err.strerror or err})'
    newest = max((meta for meta in (first, second) if meta is not None), key=lambda meta: meta[2])
    needed = (newest[1] + 1) * page_size
    if size < needed:
        return f'{data_file} is truncated ({size} bytes; its header says {needed})'
    return None
