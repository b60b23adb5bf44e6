"""Object-storage stores (s3://, gs://): pyarrow's filesystems, read back by DuckDB through fsspec.

DuckDB's own httpfs extension is downloaded at run time and fails offline, so DuckDB reads a remote
store through the same pyarrow filesystem the writers use, wrapped as an fsspec filesystem. Credentials
and endpoints come from the standard environment, read when the filesystem is made: pyarrow reads the
AWS ones (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...) and, for GCS, GOOGLE_APPLICATION_CREDENTIALS and
GOOGLE_CLOUD_PROJECT; pyarrow has no variable for a GCS endpoint, so STORAGE_EMULATOR_HOST (the name
google-cloud-storage and gcsfs use) is read here.
"""

from __future__ import annotations

import os
from datetime import timedelta

import duckdb
import pyarrow as pa
import pyarrow.fs as pafs
from fsspec.implementations.arrow import ArrowFSWrapper

from hubscan.pipeline.errors import one_line

# A GCS endpoint other than Google's (an emulator): "http://host:port"; it takes no credentials.
GCS_ENDPOINT_ENV = "STORAGE_EMULATOR_HOST"
# Environment names that configure object storage; a sweep forwards them to its Ray workers.
STORAGE_ENV_PREFIXES = ("AWS_", "GOOGLE_", "GCS_", GCS_ENDPOINT_ENV)
# pyarrow's GCS client retries for 15 minutes by default, so a machine without credentials waited that
# long on the GCE metadata server before failing; 15 s outlasts a burst of 5xx answers (measured: the
# no-credentials error then comes after 25 s off GCP).
GCS_RETRY_S = 15
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
    if uri.startswith("gs://") and "?" not in uri:
        return gcs_filesystem(), uri.removeprefix("gs://").rstrip("/")
    return pafs.FileSystem.from_uri(uri)


def gcs_filesystem() -> pafs.GcsFileSystem:
    """pyarrow's GCS filesystem from the environment: an emulator when STORAGE_EMULATOR_HOST is set."""
    options: dict[str, object] = {
        "retry_time_limit": timedelta(seconds=GCS_RETRY_S),
        "project_id": os.environ.get("GOOGLE_CLOUD_PROJECT"),
    }
    endpoint = os.environ.get(GCS_ENDPOINT_ENV)
    if endpoint:
        scheme, _, host = endpoint.rpartition("://")
        options.update(anonymous=True, scheme=scheme or "http", endpoint_override=host)
    return pafs.GcsFileSystem(**options)


def storage_env() -> dict[str, str]:
    """The object-storage settings of this process's environment, to hand to Ray workers."""
    return {k: v for k, v in os.environ.items() if k.startswith(STORAGE_ENV_PREFIXES)}


def register(con: duckdb.DuckDBPyConnection, fs: pafs.FileSystem, scheme: str) -> None:
    """Let DuckDB read ``scheme://`` paths through the store's own pyarrow filesystem."""
    wrapper = type(f"Arrow{scheme.title()}", (ArrowFSWrapper,), {"protocol": scheme})
    con.register_filesystem(wrapper(fs))


def storage_error(exc: BaseException) -> str:
    """A storage error as one line (the AWS SDK's messages span several; the GCS client appends metadata)."""
    text = one_line(str(exc).split(" error_info=", 1)[0])
    return text if not isinstance(exc, pa.ArrowInvalid) else f"invalid store location: {text}"
