"""zappa_settings.json: ``zappa package`` builds the web app's Lambda zip here, offline.

Zappa packages the project folder (the current directory, less ``exclude``/``exclude_glob``) plus
the site-packages of the virtualenv named by ``VIRTUAL_ENV``. So the test builds a clean venv
holding only the runtime dependencies (pyproject's ``dependencies`` and the ``mysql`` and
``postgres`` extras; not the project itself, whose copy in site-packages would shadow the work
tree's) plus zappa, and caches it under ``~/.cache/othermail`` (``OTHERMAIL_CACHE_DIR``), keyed by
those requirements and the Python version: the first build takes about a minute, later runs reuse
it.

``zappa package`` needs no AWS account: it runs with dummy credentials, ``AWS_ENDPOINT_URL`` and an
HTTP(S) proxy both pointing at a closed port, so any AWS call or download would fail. (Zappa
would otherwise look each installed distribution up on PyPI's JSON API to swap in a manylinux
wheel; offline it keeps the venv's own wheels, which are checked below against Lambda's glibc.)

Then the zip is unpacked and zappa's own Lambda handler serves a request in a clean interpreter
(``tests/deploy/lambda_sandbox.py``), reading the database URL and the secret key from SSM
Parameter Store on a moto server, as the ``dev`` stage does on AWS.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

import migrations
from forwarder.settings import Settings
from tests.deploy.lambda_sandbox import (
    aws_offline_env,
    lambda_incompatible,
    last_json_line,
    provided_by_runtime,
    run_clean,
    unpack,
)

REPO = Path(__file__).resolve().parents[2]
SETTINGS_FILE = REPO / "zappa_settings.json"
STAGES = ("dev", "production")
VENV_FORMAT = 2  # bump to rebuild every cached venv
#: abi3 wheels pip picks for this machine's newer glibc; online, zappa swaps in PyPI's first
#: manylinux x86_64 abi3 wheel (manylinux_2_17 for these), which the venv gets here instead.
LAMBDA_WHEELS = ("cryptography",)
SECRET_NAMES = ("OTHERMAIL_DATABASE_URL", "OTHERMAIL_WEB_SECRET_KEY", "OTHERMAIL_RELAY_PASSWORD")


def zappa_settings() -> dict:
    return json.loads(SETTINGS_FILE.read_text())


def stage_config(stage: str) -> dict:
    """A stage with what it ``extends`` (zappa merges one level of keys the same way)."""
    settings = zappa_settings()
    config = dict(settings[stage])
    parent = config.pop("extends", None)
    return {**stage_config(parent), **config} if parent else config


def requirements() -> list[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    zappa = [r for r in extras["dev"] if re.match(r"zappa\b", r, re.IGNORECASE)]
    assert zappa, "pyproject's dev extra should name zappa"
    return [*project["dependencies"], *extras["mysql"], *extras["postgres"], *zappa]


@pytest.fixture(scope="session")
def zappa_venv() -> Path:
    """A clean venv with the runtime dependencies and zappa, built once and cached."""
    reqs = requirements()
    key = hashlib.sha256(json.dumps([reqs, list(sys.version_info[:2]), VENV_FORMAT]).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("OTHERMAIL_CACHE_DIR") or Path.home() / ".cache" / "othermail")
    venv = cache / f"zappa-venv-{key}"
    if (venv / "ready").exists():
        return venv
    cache.mkdir(parents=True, exist_ok=True)
    partial = cache / f"zappa-venv-{key}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(partial)], check=True, timeout=300)
    # Scripts would carry the partial folder in their shebang: everything runs as ``python -m``.
    install = subprocess.run(
        [str(partial / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *reqs],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert install.returncode == 0, f"pip install failed:\n{install.stdout[-3000:]}\n{install.stderr[-3000:]}"
    site = next((partial / "lib").glob("python3.*/site-packages"))
    pinned = [f"{name}=={importlib.metadata.version(name)}" for name in LAMBDA_WHEELS]
    swap = subprocess.run(
        [str(partial / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        + ["--upgrade", "--no-deps", "--only-binary=:all:", "--platform", "manylinux2014_x86_64"]
        + ["--python-version", "3.11", "--implementation", "cp", "--target", str(site), *pinned],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert swap.returncode == 0, f"pip install failed:\n{swap.stdout[-3000:]}\n{swap.stderr[-3000:]}"
    (partial / "ready").write_text(f"{' '.join(reqs)}\nbuilt in {time.monotonic() - started:.0f} s\n")
    try:
        partial.rename(venv)
    except OSError:  # another run finished first
        shutil.rmtree(partial, ignore_errors=True)
    for old in cache.glob("zappa-venv-*"):  # venvs of older requirements
        if old != venv and ".partial-" not in old.name:
            shutil.rmtree(old, ignore_errors=True)
    return venv


@pytest.fixture(scope="module")
def packages(zappa_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``zappa package <stage> -o web-<stage>.zip`` for every stage, from the repository root."""
    out = tmp_path_factory.mktemp("zappa")
    (out / "tmp").mkdir()
    built = {}
    for stage in STAGES:
        archive = out / f"web-{stage}.zip"
        started = time.monotonic()
        result = subprocess.run(
            [
                str(zappa_venv / "bin" / "python"),
                "-c",
                "import sys; from zappa.cli import handle; sys.exit(handle())",
                "package",
                stage,
                "-o",
                str(archive),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            env=aws_offline_env(VIRTUAL_ENV=str(zappa_venv), TMPDIR=str(out / "tmp")),
        )
        assert result.returncode == 0 and archive.is_file(), f"zappa package {stage}:\n{result.stdout}\n{result.stderr}"
        print(f"zappa package {stage}: {archive.stat().st_size / 2**20:.1f} MiB in {time.monotonic() - started:.1f} s")
        built[stage] = archive
    return built


def names(archive: Path) -> list[str]:
    with zipfile.ZipFile(archive) as zipped:
        return zipped.namelist()


# -- the settings file -------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_stages_run_the_web_app_on_python_311(stage: str) -> None:
    config = stage_config(stage)
    assert config["app_function"] == "web.wsgi.app"
    assert config["runtime"] == "python3.11"
    assert config["project_name"] == "othermail"
    assert config["s3_bucket"] and config["aws_region"]
    assert not config.get("slim_handler")
    # DEBUG would have botocore log the decrypted SSM / Secrets Manager responses; zappa's ``debug``
    # returns tracebacks to the client.
    # not INFO: at INFO zappa.wsgi logs every request line, secret links included (review F5)
    assert config["log_level"] in ("WARNING", "ERROR") and config["debug"] is False
    # Lambda freezes the process once the answer is out: a mail worker thread could lose the mail
    assert config["aws_environment_variables"]["OTHERMAIL_WEB_MAIL_WORKER"] == "inline"


@pytest.mark.parametrize("stage", STAGES)
def test_secrets_stay_out_of_plain_settings(stage: str) -> None:
    config = stage_config(stage)
    plain = config["aws_environment_variables"]
    assert "environment_variables" not in config, "environment_variables are written into the zip in clear"
    assert "remote_env" not in config
    for name in SECRET_NAMES:
        assert name not in plain, f"{name} belongs in SSM / Secrets Manager, not aws_environment_variables"
    sources = [name for name in ("OTHERMAIL_SSM_PATH", "OTHERMAIL_SECRETS_ARN") if plain.get(name)]
    assert sources, "each stage reads its secrets from SSM or Secrets Manager"
    granted = {action for statement in config["extra_permissions"] for action in statement["Action"]}
    if "OTHERMAIL_SSM_PATH" in sources:
        assert "ssm:GetParametersByPath" in granted
        statement = next(s for s in config["extra_permissions"] if "ssm:GetParametersByPath" in s["Action"])
        assert statement["Resource"].endswith(":parameter" + plain["OTHERMAIL_SSM_PATH"])
    if "OTHERMAIL_SECRETS_ARN" in sources:
        assert "secretsmanager:GetSecretValue" in granted
    # API Gateway's client address and scheme already reach the app through zappa, not ProxyFix.
    assert plain["OTHERMAIL_WEB_PROXY_FIX"] == "false"
    # Lambda's disk is read-only but for /tmp.
    assert plain["OTHERMAIL_DATA_DIR"].startswith("/tmp/")
    settings = Settings.from_env(plain)  # every plain value parses
    assert settings.sender == "ses"


# -- the package --------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_the_zip_holds_the_app_and_its_runtime_dependencies(packages: dict[str, Path], stage: str) -> None:
    listed = set(names(packages[stage]))
    tops = {name.split("/")[0] for name in listed}
    for required in (
        "web/wsgi.py",
        "web/__init__.py",
        "forwarder/hosts/lambda_handler.py",
        "forwarder/adapters/aws/secrets.py",
        "forwarder/core/forward.py",
        "models/__init__.py",
        "migrations/env.py",
        "handler.py",
        "zappa_settings.py",
        "zappa/handler.py",
    ):
        assert required in listed, required
    assert any(n.startswith("web/templates/") for n in listed) and any(n.startswith("web/static/") for n in listed)
    assert any(n.startswith("migrations/versions/") for n in listed)
    for package in (
        "flask",
        "werkzeug",
        "jinja2",
        "sqlalchemy",
        "alembic",
        "flask_wtf",
        "argon2",
        "dns",
        "pymysql",
        "psycopg",
        "psycopg_binary",
    ):
        assert package in tops, package
    # boto3 and botocore come with Lambda's python runtime: the settings leave them out (zappa itself
    # would not), which saves about 13 MiB of the zip.
    assert not tops & {"boto3", "botocore", "s3transfer"}


@pytest.mark.parametrize("stage", STAGES)
def test_the_zip_leaves_out_tests_tools_and_dev_dependencies(packages: dict[str, Path], stage: str) -> None:
    listed = names(packages[stage])
    tops = {name.split("/")[0] for name in listed}
    for unwanted in (
        "tests",
        "bench",
        "deploy",
        ".ci",
        ".git",
        ".venv",
        ".hypothesis",
        ".pytest_cache",
        "corpus",
        "shared",
        "var",
        "dist",
        "othermail.egg-info",
        "pytest",
        "_pytest",
        "moto",
        "playwright",
        "schemathesis",
        "hypothesis",
        "troposphere",
        "pip",
        "setuptools",
        "README.md",
        "mkdocs.yml",
        "pyproject.toml",
        "zappa_settings.json",
    ):
        assert unwanted not in tops, unwanted
    assert not [n for n in listed if n.startswith("forwarder/samples/")]  # only `othermail demo` reads them
    assert not [n for n in listed if n.endswith((".eml", ".pyc", ".zip"))]
    assert not [n for n in listed if "__pycache__" in n or "__editable__" in n]


@pytest.mark.parametrize("stage", STAGES)
def test_the_zip_fits_lambda(packages: dict[str, Path], stage: str) -> None:
    archive = packages[stage]
    with zipfile.ZipFile(archive) as zipped:
        unpacked = sum(info.file_size for info in zipped.infolist())
        settings = zipped.read("zappa_settings.py").decode()
    assert archive.stat().st_size < 50 * 2**20  # direct upload limit
    assert unpacked < 250 * 2**20  # unzipped limit, layers included
    assert lambda_incompatible(archive) == {}  # every compiled wheel runs on Amazon Linux 2 (glibc 2.26)
    assert "APP_MODULE='web.wsgi'" in settings and "APP_FUNCTION='app'" in settings
    assert f"API_STAGE='{stage}'" in settings
    for name in SECRET_NAMES:
        assert name not in settings


@contextlib.contextmanager
def dev_stage_with_ssm(tmp_path: Path, url: str) -> Iterator[dict[str, str]]:
    """The dev stage's environment, offline, with its database URL (``url``, migrated) and secret
    key in SSM on a moto server on loopback, as the packaged handler reads them."""
    from moto.server import ThreadedMotoServer

    migrations.upgrade(url)
    plain = stage_config("dev")["aws_environment_variables"]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        ssm = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        ).client("ssm", endpoint_url=endpoint)
        path = plain["OTHERMAIL_SSM_PATH"]
        # Overwrite: moto's backends outlive a server, so another test may have put them
        ssm.put_parameter(Name=f"{path}/OTHERMAIL_DATABASE_URL", Value=url, Type="SecureString", Overwrite=True)
        ssm.put_parameter(Name=f"{path}/OTHERMAIL_WEB_SECRET_KEY", Value="k" * 48, Type="SecureString", Overwrite=True)
        yield aws_offline_env(
            **{**plain, "OTHERMAIL_DATA_DIR": str(tmp_path / "data")},
            AWS_ENDPOINT_URL=endpoint,
            NO_PROXY="127.0.0.1,localhost",
        )
    finally:
        server.stop()


@pytest.fixture(scope="module")
def dev_task(packages: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The dev zip unpacked as Lambda's task folder, and the folder standing in for the runtime's
    boto3: unpacked once for the tests that run the handler (they only read them; the second run
    finds the bytecode the first compiled, as a warm Lambda would)."""
    folder = tmp_path_factory.mktemp("dev-task")
    return unpack(packages["dev"], folder / "task"), provided_by_runtime(folder / "runtime")


def test_the_packaged_app_serves_a_request_with_secrets_from_ssm(dev_task: tuple[Path, Path], tmp_path: Path) -> None:
    """Zappa's handler in a clean interpreter: the app from the zip, boto3 from 'the runtime', its
    database URL and secret key from SSM on a moto server (the dev stage's OTHERMAIL_SSM_PATH)."""
    task, provided = dev_task
    url = f"sqlite:///{tmp_path / 'othermail.db'}"
    with dev_stage_with_ssm(tmp_path, url) as env:
        event = {
            "httpMethod": "GET",
            "path": "/signin",
            "queryStringParameters": None,
            "body": None,
            "isBase64Encoded": False,
            "headers": {
                "Host": "othermail.example.com",
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Port": "443",
                "X-Forwarded-For": "203.0.113.7, 130.176.0.1",
            },
            "requestContext": {"stage": "dev", "identity": {"sourceIp": "203.0.113.7"}},
        }
        code = f"""
import importlib, json
leaked = []
for name in ("pytest", "moto", "playwright", "schemathesis", "hypothesis"):
    try:
        importlib.import_module(name)
        leaked.append(name)
    except ImportError:
        pass
import handler
response = handler.lambda_handler({event!r}, None)
import boto3, flask, web.wsgi
app = web.wsgi.app
print(json.dumps({{"leaked": leaked, "status": response["statusCode"], "body": response.get("body", ""),
                  "flask": flask.__file__, "boto3": boto3.__file__, "secret": app.config["SECRET_KEY"],
                  "database": app.config["SETTINGS"].database_url}}))
"""
        result = run_clean(code, [task, provided], env, cwd=task)
    seen = last_json_line(result)
    assert seen["leaked"] == []
    assert seen["status"] == 200, seen["body"][:2000]
    assert 'name="password"' in seen["body"]
    assert seen["flask"].startswith(str(task)) and seen["boto3"].startswith(str(provided))
    assert (seen["secret"], seen["database"]) == ("k" * 48, url)
    assert "k" * 48 not in result.stderr  # the secret is not logged


def test_the_packaged_handler_logs_no_secret_link(dev_task: tuple[Path, Path], tmp_path: Path) -> None:
    """Review finding F5: Zappa writes every request line to CloudWatch (zappa.wsgi.common_log, at
    INFO) when the stage's log_level lets INFO through, and the links the service mails carry their
    token in the path. Opening them through the packaged handler leaves no token in the log."""
    task, provided = dev_task
    url = f"sqlite:///{tmp_path / 'othermail.db'}"
    with dev_stage_with_ssm(tmp_path, url) as env:
        events = [
            {
                "httpMethod": "GET",
                "path": secret_path,
                "queryStringParameters": None,
                "body": None,
                "isBase64Encoded": False,
                "headers": {"Host": "othermail.example.com", "X-Forwarded-Proto": "https", "X-Forwarded-Port": "443"},
                "requestContext": {"stage": "dev", "identity": {"sourceIp": "203.0.113.7"}},
            }
            for secret_path in (
                "/signin",
                "/reset/SECRETRESETTOKEN",
                "/email/verify/SECRETEMAILTOKEN",
                "/destinations/verify/SECRETDESTTOKEN",
            )
        ]
        code = f"""
import json, handler
print(json.dumps([handler.lambda_handler(event, None)["statusCode"] for event in {events!r}]))
"""
        result = run_clean(code, [task, provided], env, cwd=task)
    assert last_json_line(result)[0] == 200
    logged = result.stdout + result.stderr
    assert "SECRET" not in logged, logged[-2000:]


@pytest.mark.parametrize("stage", STAGES)
def test_the_web_app_may_read_kept_mail_and_nothing_else_of_the_bucket(stage: str) -> None:
    """Message pages download the original from the receipt rule's bucket (web/services/messages.py)."""
    from tests.deploy.iam_policy import allowed

    config = stage_config(stage)
    bucket = config["aws_environment_variables"]["OTHERMAIL_S3_BUCKET"]
    prefix = Settings.from_env(config["aws_environment_variables"]).s3_prefix
    policies = [{"Statement": config["extra_permissions"]}]
    assert allowed(policies, "s3:GetObject", f"arn:aws:s3:::{bucket}/{prefix}0100abc")
    assert allowed(policies, "s3:ListBucket", f"arn:aws:s3:::{bucket}")  # a missing key is a 404, not a 403
    assert not allowed(policies, "s3:GetObject", f"arn:aws:s3:::{bucket}/other/key")
    assert not allowed(policies, "s3:PutObject", f"arn:aws:s3:::{bucket}/{prefix}0100abc")
    assert not allowed(policies, "s3:DeleteObject", f"arn:aws:s3:::{bucket}/{prefix}0100abc")
