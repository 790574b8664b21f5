"""The local HTTP server: files, fault routes, request log."""

import urllib.error
import urllib.request

import pytest

from lightclip_demo.localserver import LocalServer, Route


def _get(url, timeout=2.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read()


def test_files_faults_and_request_log(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"jpegbytes")
    routes = {
        "/gone": Route.not_found(),
        "/boom": Route.server_error(),
        "/page": Route.html(),
        "/moved": Route.redirect("/a.jpg"),
        "/slow": Route.slow(1.0),
        "/bad": Route.corrupt(),
    }
    with LocalServer(tmp_path, routes) as server:
        assert server.url("a.jpg") == f"http://127.0.0.1:{server.port}/a.jpg"
        assert _get(server.url("a.jpg")) == (200, b"jpegbytes")
        assert _get(server.url("moved")) == (200, b"jpegbytes")
        assert b"<html>" in _get(server.url("page"))[1]
        assert _get(server.url("bad"))[1].startswith(b"\xff\xd8")
        for path, code in (("gone", 404), ("boom", 500), ("../etc/passwd", 404)):
            with pytest.raises(urllib.error.HTTPError) as err:
                _get(server.url(path))
            assert err.value.code == code
        with pytest.raises(OSError):
            _get(server.url("slow"), timeout=0.2)
        assert server.requested("a.jpg") == 2 and server.requested("moved") == 1
        assert server.requests["/never"] == 0
    with pytest.raises(OSError):
        _get(server.url("a.jpg"), timeout=0.5)
