"""Only the optional C helper lives here; everything else is in pyproject.toml.

`s3free.storage._batchio` batches small-file I/O with the GIL released once (see its source).
It is optional: where it cannot be compiled, the install goes on and s3free uses the same
calls written in Python (slower for 4 KiB objects, identical in results)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "s3free.storage._batchio",
            ["s3free/storage/_batchio.c"],
            optional=True,
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ]
)
