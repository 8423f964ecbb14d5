"""Compression method plugins: each file registers one method with @register_method.

Two of them define a size encoding of their own (bench.deploy.ENCODINGS). They are declared
here, by module and name, so that every model is measured against every encoding whichever
plugins its process happened to import; each is imported the first time a model is measured.
"""

from bench.deploy import ENCODINGS

ENCODINGS.lazy("huffman", "methods.deep_compression:huffman_bytes")
ENCODINGS.lazy("packed-codes", "methods.uniform:packed_codes_bytes")
