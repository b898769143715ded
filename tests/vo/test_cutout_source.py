"""Cutouts of files that are not plain local FITS: URLs (fsspec), tile-compressed and gzipped files.

The HTTP case uses a real server on loopback that honours ``Range`` and counts the bytes it
sends, so the test shows that a small cut of a big cube reads a small part of it.
"""

from __future__ import annotations

import gzip
import io
import re
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import fsspec
import numpy as np
import pytest
from astropy.io import fits

from vo.cutout import CutRequest, plan, source
from vo.cutout.merge import MergeInput, merge
from vo.shapes import Circle

REST = 110_201_354_300.0


def _cube(path: Path, *, nx=128, ny=128, nv=64, dtype=">f4") -> Path:
    h = fits.Header()
    h.update(CTYPE1="GLON-CAR", CTYPE2="GLAT-CAR", CUNIT1="deg", CUNIT2="deg", CDELT1=-0.002, CDELT2=0.002,
             CRPIX1=(nx + 1) / 2, CRPIX2=(ny + 1) / 2, CRVAL1=10.0, CRVAL2=0.0, CTYPE3="VRAD", CUNIT3="m/s",
             CRVAL3=-40000.0, CDELT3=1250.0, CRPIX3=1.0, RESTFRQ=REST, BUNIT="K")
    data = np.arange(nx * ny * nv, dtype=np.float64).reshape(nv, ny, nx) % 1000
    fits.PrimaryHDU(data.astype(dtype), h).writeto(path)
    return path


REQ = CutRequest(region=Circle(lon=10.01, lat=0.02, radius=0.02), frame="galactic")


def _cut(path: str | Path) -> tuple[fits.PrimaryHDU, bytes]:
    c = plan(path, REQ, {"VLKBSRC": ("x", "src")})
    body = b"".join(c.chunks())
    assert len(body) == c.size
    return fits.open(io.BytesIO(body))[0], body


def test_file_and_memory_urls_cut_like_the_local_file(tmp_path) -> None:
    local = _cube(tmp_path / "c.fits")
    _, expected = _cut(local)
    _, got = _cut(f"file://{local}")
    assert got == expected
    fs = fsspec.filesystem("memory")
    fs.pipe("/vlkb-test/c.fits", local.read_bytes())
    try:
        assert source.exists("memory:///vlkb-test/c.fits") and not source.exists("memory:///vlkb-test/nope.fits")
        assert _cut("memory:///vlkb-test/c.fits")[1] == expected
    finally:
        fs.rm("/vlkb-test", recursive=True)


@pytest.mark.parametrize("kind", ["rice", "gzip-file"])
def test_compressed_files_give_the_same_pixels(tmp_path, kind) -> None:
    local = _cube(tmp_path / "c.fits", dtype=">i4")
    reference, _ = _cut(local)
    if kind == "rice":
        packed = tmp_path / "c.fits.fz"
        with fits.open(local) as hdul:
            fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(hdul[0].data, hdul[0].header,
                                                                compression_type="RICE_1")]).writeto(packed)
    else:
        packed = tmp_path / "c.fits.gz"
        with open(local, "rb") as src, gzip.open(packed, "wb") as dst:
            shutil.copyfileobj(src, dst)
    hdu, _ = _cut(packed)
    np.testing.assert_array_equal(hdu.data, reference.data)
    for key in ("CRPIX1", "CRPIX2", "CRPIX3", "NAXIS1", "NAXIS2", "NAXIS3"):
        assert hdu.header[key] == reference.header[key]


class _RangeHandler(SimpleHTTPRequestHandler):
    """Static files with single ``Range: bytes=a-b`` requests, counting the body bytes sent."""

    sent = 0
    lock = threading.Lock()

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        size = path.stat().st_size
        start, end = 0, size - 1
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if m:
            start, end = int(m.group(1)), min(size - 1, int(m.group(2)) if m.group(2) else size - 1)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        else:
            self.send_response(200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        if body:
            with open(path, "rb") as f:
                f.seek(start)
                data = f.read(end - start + 1)
            self.wfile.write(data)
            with self.lock:
                type(self).sent += len(data)


@pytest.fixture()
def http_files(tmp_path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = type("Handler", (_RangeHandler,), {"sent": 0})
    # a listen backlog like a real server's: a cut sends its ranged GETs together (vo.storage.read_ranges),
    # and socketserver's default of 5 makes the rest wait for SYN retries of 1, 3, 7 ... seconds
    server_class = type("Server", (ThreadingHTTPServer,), {"request_queue_size": 256, "daemon_threads": True})
    server = server_class(("127.0.0.1", 0), lambda *a: handler(*a, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root, handler
    finally:
        server.shutdown()
        server.server_close()


def test_http_url_reads_only_a_small_part_of_a_big_cube(http_files) -> None:
    pytest.importorskip("aiohttp")
    base, root, handler = http_files
    local = _cube(root / "big.fits", nx=512, ny=512, nv=64)  # 64 MiB
    expected = _cut(local)[1]
    url = f"{base}/big.fits"
    assert source.exists(url) and not source.exists(f"{base}/nope.fits")
    handler.sent = 0
    got = _cut(url)[1]
    assert got == expected
    size = local.stat().st_size
    assert handler.sent < size / 10, f"read {handler.sent} of {size} bytes"
    # the merge engine reads URLs the same way
    merged = merge([MergeInput("big", url)], REQ, max_voxels=10**7)
    np.testing.assert_array_equal(np.isfinite(merged.data), merged.coverage > 0)
