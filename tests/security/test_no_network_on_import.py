"""Importing any module of the three packages (and img2dataset after it) makes no network request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import importlib, ipaddress, json, pkgutil, socket, sys, urllib.request

attempts = []


def loopback(host):
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return host == "localhost"


real_getaddrinfo, real_connect, real_connect_ex = socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex


def getaddrinfo(host, *args, **kwargs):
    if host is not None and not loopback(host):
        attempts.append(f"resolve {host}")
        raise OSError(f"network disabled in this test: {host}")
    return real_getaddrinfo(host, *args, **kwargs)


def guard(real):
    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not loopback(address[0]):
            attempts.append(f"connect {address}")
            raise OSError(f"network disabled in this test: {address}")
        return real(self, address)
    return connect


socket.getaddrinfo = getaddrinfo
socket.socket.connect, socket.socket.connect_ex = guard(real_connect), guard(real_connect_ex)
names, failed = [], {}
for package in ("pipeline", "lightclip", "lightclip_demo"):
    root = importlib.import_module(package)
    names += [m.name for m in pkgutil.walk_packages(root.__path__, package + ".") if not m.name.endswith("__main__")]
for name in names:
    try:
        importlib.import_module(name)
    except Exception as err:
        failed[name] = repr(err)
import img2dataset, albumentations  # what the downloader imports when it runs
during_imports = list(attempts)
try:
    urllib.request.urlopen("http://example.com/", timeout=1)  # the guard itself must catch this
except OSError:
    pass
print(json.dumps({"modules": names, "failed": failed, "attempts": during_imports, "self_check": attempts}))
"""


@pytest.mark.slow
def test_importing_every_module_makes_no_network_request(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env, check=True
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert {
        "pipeline.build",
        "pipeline.download",
        "lightclip.evaluation",
        "lightclip.cli.eval",
        "lightclip_demo.cli",
        "lightclip_demo.run",
    } <= set(report["modules"])
    assert report["failed"] == {}
    assert report["attempts"] == []
    assert report["self_check"] == ["resolve example.com"]
    assert "Albumentations" not in out.stderr  # no update-check warning either
