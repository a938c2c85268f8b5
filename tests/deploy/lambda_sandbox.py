"""Run code the way AWS Lambda's python3.11 runtime would: a clean interpreter that sees only the
unpacked deployment package, plus the copy of boto3 the runtime itself provides.

``python -I -S``: no site-packages, no user site, no PYTHON* variables, not even the current
folder; ``sys.path`` is the standard library, then the unpacked zip (``/var/task`` on Lambda),
then the runtime's boto3 (symlinks into this test's own environment), in Lambda's order.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import zipfile
from pathlib import Path

#: What the Lambda python3.11 runtime provides itself: boto3 and its dependencies.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")

#: Lambda's python3.11 runtime runs on Amazon Linux 2: glibc 2.26.
LAMBDA_GLIBC = (2, 26)
_LEGACY_GLIBC = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


def aws_offline_env(**extra: str) -> dict[str, str]:
    """An environment with dummy credentials where any AWS or HTTP(S) call fails at once."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/nonexistent",
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_MAX_ATTEMPTS": "1",
        # Port 9 (discard) is closed: an AWS API call or a download through the proxy is refused.
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "http_proxy": "http://127.0.0.1:9",
        "https_proxy": "http://127.0.0.1:9",
        "NO_PROXY": "",
    }
    env.update(extra)
    return env


def provided_by_runtime(folder: Path) -> Path:
    """A folder of symlinks to this environment's boto3 & co., standing in for the runtime's copy."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_PROVIDED:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin, f"{name} is not installed in the test environment"
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        link = folder / source.name
        if not link.exists():
            link.symlink_to(source)
    return folder


def unpack(archive: Path, folder: Path) -> Path:
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(folder)
    return folder


def run_clean(
    code: str, paths: list[Path], env: dict[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in ``python -I -S`` with ``paths`` (in order) after the standard library."""
    prelude = f"import sys\nsys.path.extend({[str(p) for p in paths]!r})\n"
    return subprocess.run(
        [sys.executable, "-I", "-S", "-c", prelude + code],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def last_json_line(result: subprocess.CompletedProcess[str]) -> dict:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def platform_glibc(tag: str) -> tuple[int, int] | None:
    """The glibc a wheel platform tag needs (``manylinux_2_17_x86_64`` -> (2, 17)), None if not manylinux."""
    for legacy, version in _LEGACY_GLIBC.items():
        if tag.startswith(legacy + "_"):
            return version
    if tag.startswith("manylinux_"):
        major, minor = tag.split("_")[1:3]
        return int(major), int(minor)
    return None


def wheel_platforms(wheel_file: str) -> list[str]:
    """The platform tags of a ``*.dist-info/WHEEL`` file's text."""
    return [
        line.split(":", 1)[1].strip().rsplit("-", 1)[-1] for line in wheel_file.splitlines() if line.startswith("Tag:")
    ]


def lambda_incompatible(archive: Path) -> dict[str, list[str]]:
    """Compiled distributions in ``archive`` whose wheels need a newer glibc than Lambda's, or
    were built for something other than linux x86_64: {dist-info folder: its platform tags}."""
    bad: dict[str, list[str]] = {}
    with zipfile.ZipFile(archive) as zipped:
        for name in zipped.namelist():
            if not name.endswith(".dist-info/WHEEL"):
                continue
            platforms = wheel_platforms(zipped.read(name).decode())
            if all(p == "any" for p in platforms):
                continue
            fits = [
                p
                for p in platforms
                if p.endswith("_x86_64") and (glibc := platform_glibc(p)) is not None and glibc <= LAMBDA_GLIBC
            ]
            if not fits:
                bad[name.split("/")[0]] = platforms
    return bad
