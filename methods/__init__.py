"""Compression method plugins: each file registers one method with @register_method."""
