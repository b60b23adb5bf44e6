"""Object-storage stores (s3://, gs://): pyarrow's filesystems, read back by DuckDB through fsspec.

DuckDB's own httpfs extension is downloaded at run time and fails offline, so DuckDB reads a remote
store through the same pyarrow filesystem the writers use, wrapped as an fsspec filesystem. Credentials
and endpoints come from the standard environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...; the GCS
equivalents), read by pyarrow when the filesystem is made.
"""

from __future__ import annotations

import os

import duckdb
import pyarrow as pa
import pyarrow.fs as pafs
from fsspec.implementations.arrow import ArrowFSWrapper

# Environment names that configure object storage; a sweep forwards them to its Ray workers.
STORAGE_ENV_PREFIXES = ("AWS_", "GOOGLE_", "GCS_")
# One PUT per small file instead of a multipart upload: fewer requests, and S3-compatible servers
# that get multipart wrong (moto 5.2 answers CompleteMultipartUpload with an error pyarrow rejects)
# still take the per-model files.
S3_OPTIONS = "allow_delayed_open=true"


def open_filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """pyarrow filesystem and base path of an object-storage URI.

    Raises:
        OSError / pyarrow.ArrowInvalid: the URI is malformed or its filesystem unavailable.
    """
    if uri.startswith("s3://") and "?" not in uri:
        uri = f"{uri}?{S3_OPTIONS}"
    return pafs.FileSystem.from_uri(uri)


def storage_env() -> dict[str, str]:
    """The object-storage settings of this process's environment, to hand to Ray workers."""
    return {k: v for k, v in os.environ.items() if k.startswith(STORAGE_ENV_PREFIXES)}


def register(con: duckdb.DuckDBPyConnection, fs: pafs.FileSystem, scheme: str) -> None:
    """Let DuckDB read ``scheme://`` paths through the store's own pyarrow filesystem."""
    wrapper = type(f"Arrow{scheme.title()}", (ArrowFSWrapper,), {"protocol": scheme})
    con.register_filesystem(wrapper(fs))


def one_line(exc: BaseException) -> str:
    """A storage error as one line (the AWS SDK's messages span several)."""
    text = " ".join(str(exc).split())
    return text if not isinstance(exc, pa.ArrowInvalid) else f"invalid store location: {text}"
