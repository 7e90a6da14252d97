"""Object storage behind one small interface: local directory, S3 (boto3), HTTP range GET.

An endpoint string picks the implementation:
  file:///abs/dir          -> LocalDirStore (object = <dir>/<bucket>/<key>)
  s3+http(s)://host:port   -> S3Store via boto3 (credentials from the usual AWS_* env)
  http(s)://host:port      -> S3Store when boto3 imports and AWS_ACCESS_KEY_ID is set,
                              otherwise HttpRangeStore (anonymous, read-only, path-style URLs)
"""
from __future__ import annotations

import os
import urllib.request
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse


class BlobStore(Protocol):
    def get_range(self, bucket: str, key: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of an object."""

    def get(self, bucket: str, key: str) -> bytes: ...

    def put(self, bucket: str, key: str, data: bytes, metadata: dict[str, str] | None = None) -> None: ...


class LocalDirStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _path(self, bucket: str, key: str) -> Path:
        path = (self.root / bucket / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"object key escapes the store root: {bucket}/{key}")
        return path

    def get_range(self, bucket: str, key: str, start: int, end: int) -> bytes:
        with open(self._path(bucket, key), "rb") as f:
            f.seek(start)
            return f.read(end - start)

    def get(self, bucket: str, key: str) -> bytes:
        return self._path(bucket, key).read_bytes()

    def put(self, bucket: str, key: str, data: bytes, metadata: dict[str, str] | None = None) -> None:
        path = self._path(bucket, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # readers never see a half-written object
        if metadata:
            import json
            path.with_name(path.name + ".meta.json").write_text(json.dumps(metadata, sort_keys=True))


class HttpRangeStore:
    """Anonymous path-style GETs (public buckets, presigned gateways); read-only."""

    def __init__(self, endpoint: str, timeout_s: float = 60.0) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.timeout_s = timeout_s

    def _url(self, bucket: str, key: str) -> str:
        return f"{self.endpoint}/{bucket}/{key}"

    def get_range(self, bucket: str, key: str, start: int, end: int) -> bytes:
        req = urllib.request.Request(self._url(bucket, key), headers={"Range": f"bytes={start}-{end - 1}"})
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
            data = resp.read()
        if len(data) != end - start:
            raise IOError(f"short range read {bucket}/{key} [{start},{end}): got {len(data)} bytes")
        return data

    def get(self, bucket: str, key: str) -> bytes:
        with urllib.request.urlopen(self._url(bucket, key), timeout=self.timeout_s) as resp:
            return resp.read()

    def put(self, bucket: str, key: str, data: bytes, metadata: dict[str, str] | None = None) -> None:
        raise PermissionError("HttpRangeStore is read-only (anonymous range GETs); configure S3 credentials to write checkpoints")


class S3Store:
    def __init__(self, endpoint: str | None) -> None:
        import boto3  # Debian python3-boto3; imported lazily so tests never need it
        self.client = boto3.client("s3", endpoint_url=endpoint)

    def get_range(self, bucket: str, key: str, start: int, end: int) -> bytes:
        resp = self.client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end - 1}")
        return resp["Body"].read()

    def get(self, bucket: str, key: str) -> bytes:
        return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()

    def put(self, bucket: str, key: str, data: bytes, metadata: dict[str, str] | None = None) -> None:
        self.client.put_object(Bucket=bucket, Key=key, Body=data, Metadata=metadata or {})


def _boto3_usable() -> bool:
    try:
        import boto3  # noqa: F401
    except ImportError:
        return False
    return bool(os.environ.get("AWS_ACCESS_KEY_ID"))


_STORES: dict[str, BlobStore] = {}


def open_store(endpoint: str) -> BlobStore:
    """One store per endpoint string (cached: S3 clients are costly to build)."""
    if endpoint in _STORES:
        return _STORES[endpoint]
    url = urlparse(endpoint)
    store: BlobStore
    if url.scheme == "file":
        store = LocalDirStore(url.path)
    elif url.scheme in ("s3+http", "s3+https"):
        store = S3Store(endpoint.replace("s3+", "", 1))
    elif url.scheme == "s3":
        store = S3Store(None)  # AWS default endpoint
    elif url.scheme in ("http", "https"):
        store = S3Store(endpoint) if _boto3_usable() else HttpRangeStore(endpoint)
    elif url.scheme == "" and endpoint.startswith("/"):
        store = LocalDirStore(endpoint)
    else:
        raise ValueError(f"unsupported storage endpoint: {endpoint!r}")
    _STORES[endpoint] = store
    return store
