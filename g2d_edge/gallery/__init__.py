"""Galleries of enrolled people behind one protocol (`GalleryBase`), and `open_gallery`, the one entry.

    from g2d_edge.gallery import open_gallery
    gallery = open_gallery("people.npz")                    # a file gallery (`Gallery`)
    gallery = open_gallery("milvus://db-host:19530/people")  # a Milvus collection (`milvus.MilvusGallery`)

Modules: `protocol.py` (GalleryBase, Match, IdentityInfo, the shared rules, copy_gallery), `format.py` (the `.npz`
file format and the merge of concurrent saves), `file.py` (Gallery, open_gallery), `milvus/` (the Milvus gallery,
its URL and its rows; needs the [milvus] extra).
"""
from __future__ import annotations

from .file import Gallery, open_gallery
from .protocol import GalleryBase, IdentityInfo, Match, copy_gallery

__all__ = ["Gallery", "GalleryBase", "IdentityInfo", "Match", "copy_gallery", "open_gallery"]
