"""The gallery in a Milvus collection (`MilvusGallery`, README "Scaling out"); pymilvus (the [milvus] extra) is
imported only when a gallery is opened.

Modules: `gallery.py` (MilvusGallery), `url.py` (the `milvus://` URL, MilvusGalleryOptions), `rows.py` (collection
schema, rows and requests).
"""
from __future__ import annotations

from .gallery import MilvusGallery
from .url import MilvusGalleryOptions

__all__ = ["MilvusGallery", "MilvusGalleryOptions"]
