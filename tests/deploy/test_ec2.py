"""deploy/ec2, the one-box deployment, checked with the real tools from Debian.

- nginx: ``nginx -t`` on both sites inside Debian's own nginx.conf, then nginx in front of uWSGI
  for real requests over TLS (HSTS, static files, redirects, the ACME webroot, unknown names
  refused, forged X-Forwarded-* headers replaced);
- systemd: ``systemd-analyze verify`` and ``systemd-analyze security --offline`` on the units;
- uWSGI: Debian's uwsgi and python3 plugin load the project's ini (adapted: sockets and venv under
  tmp_path), answer real requests, tell systemd they are ready, stop on SIGTERM;
- shellcheck on the shell scripts; setup.sql on the MariaDB test server; the env file example
  against the settings parser.

A missing tool skips its tests with the ``apt-get install`` that provides it, except when ``CI``
is set: then they fail, so CI cannot pass by skipping. ``.ci/run`` installs all of them.
"""

from __future__ import annotations

import email
import email.policy
import http.client
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import sysconfig
import time
import tomllib
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, select, text

import migrations
from forwarder.settings import Settings
from models import RateLimitHit, User, make_engine, make_session_factory
from tests.support.factories import free_tcp_port
from tests.support.tools import missing
from web.security import hash_password

REPO = Path(__file__).resolve().parents[2]
EC2 = REPO / "deploy" / "ec2"
PLACEHOLDER = "othermail.example.com"
HOST = "mail.example.org"  # the operator's name, put in place of the placeholder
UNITS = (
    "othermail-migrate.service",
    "othermail-web.service",
    "othermail-worker.service",
    "othermail-smtp.service",
    "othermail-domains.service",
)
#: Services that run once and exit (no Restart=); othermail-domains.timer starts the second.
ONESHOTS = ("othermail-migrate.service", "othermail-domains.service")
TIMERS = ("othermail-domains.timer",)
PYTHON3_PLUGIN = Path("/usr/lib/uwsgi/plugins/python3_plugin.so")
SCRIPTS = (EC2 / "bootstrap.sh", EC2 / "othermail-admin", EC2 / "certbot" / "deploy-hook.sh", REPO / ".ci" / "run")


def tool(name: str, package: str) -> str:
    """The path of a command, or skip (fail under CI) naming the Debian package that has it."""
    found = shutil.which(name) or shutil.which(name, path="/usr/local/sbin:/usr/sbin:/sbin")
    if found:
        return found
    missing(f"{name} is not installed (apt-get install {package}; .ci/run installs it)")
    raise AssertionError  # unreachable


def placed(text: str) -> str:
    """What bootstrap.sh's ``sed "s/othermail\\.example\\.com/$host/g"`` makes of a file."""
    return text.replace(PLACEHOLDER, HOST)


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"expected {old!r} exactly once"
    return text.replace(old, new)


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as systemd's EnvironmentFile= reads this file (it uses no quotes or escapes)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


# --------------------------------------------------------------------------- the files agree


def test_the_files_agree_on_paths_and_limits() -> None:
    from web import DEFAULTS

    ini = (EC2 / "uwsgi" / "othermail.ini").read_text()
    site = (EC2 / "nginx" / "othermail.conf").read_text()
    web_unit = (EC2 / "systemd" / "othermail-web.service").read_text()
    bootstrap = (EC2 / "bootstrap.sh").read_text()
    # the socket: uWSGI makes it in the web unit's RuntimeDirectory, nginx connects to it
    assert "\nsocket = /run/othermail/uwsgi.sock\n" in ini
    assert "uwsgi_pass unix:/run/othermail/uwsgi.sock;" in site
    assert "\nRuntimeDirectory=othermail\n" in web_unit
    # the venv bootstrap.sh makes is the one uWSGI and the units use
    assert "\nVENV=$PREFIX/.venv\n" in bootstrap and "\nPREFIX=/opt/othermail\n" in bootstrap
    assert "\nvirtualenv = /opt/othermail/.venv\n" in ini
    assert "ExecStart=/usr/bin/uwsgi --ini /etc/othermail/uwsgi.ini\n" in web_unit
    assert 'install -m 0644 "$here/uwsgi/othermail.ini" "$ETC/uwsgi.ini"' in bootstrap
    # the static folder bootstrap.sh links, and the ACME webroot certbot writes to
    assert 'ln -sfn "$static" "$PREFIX/static"' in bootstrap and "alias /opt/othermail/static/;" in site
    assert "\nWEBROOT=/var/www/letsencrypt\n" in bootstrap and "root /var/www/letsencrypt;" in site
    # nginx refuses what the app would refuse anyway, and waits longer than uWSGI's harakiri
    assert DEFAULTS["MAX_CONTENT_LENGTH"] == 1024 * 1024 and "client_max_body_size 1m;" in site
    harakiri = int(re.search(r"^harakiri = (\d+)$", ini, re.M).group(1))
    read_timeout = int(re.search(r"uwsgi_read_timeout (\d+)s;", site).group(1))
    assert harakiri < read_timeout


def test_every_secret_link_path_stays_out_of_the_access_log() -> None:
    """Review finding F5: every app route whose path carries a token (the links the service mails)
    falls in the nginx location that has ``access_log off`` (``/email/verify/<token>`` once did not)."""
    import tempfile

    from web import create_app

    site = (EC2 / "nginx" / "othermail.conf").read_text()
    quiet = [
        re.compile(pattern)
        for pattern, body in re.findall(r"location ~ (\S+) \{([^}]*)\}", site)
        if "access_log off;" in body
    ]
    tmp = Path(tempfile.mkdtemp())
    settings = Settings(data_dir=tmp, database_url=f"sqlite:///{tmp / 'x.db'}", domains=("othermail.example",))
    app = create_app({"TESTING": True, "SECRET_KEY": "x", "SETTINGS": settings})
    secret = [rule.rule.replace("<token>", "SECRET") for rule in app.url_map.iter_rules() if "<token>" in rule.rule]
    app.extensions["othermail.engine"].dispose()
    assert "/email/verify/SECRET" in secret and "/reset/SECRET" in secret
    assert [path for path in secret if not any(pattern.search(path) for pattern in quiet)] == []


def test_bootstrap_installs_the_versions_ci_tested() -> None:
    """The box gets constraints.txt's exact versions (issue 12.28), with a pin for each package of
    the extras it installs."""
    bootstrap = (EC2 / "bootstrap.sh").read_text()
    assert '"$VENV/bin/pip" install --quiet -c "$src/constraints.txt" "${src}[mysql,postgres]"' in bootstrap
    pinned = {
        line.split("==")[0].strip().lower()
        for line in (REPO / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.lstrip().startswith("#")
    }
    assert {"pymysql", "psycopg", "psycopg-binary", "aiosmtpd", "flask"} <= pinned


def test_the_package_ships_the_templates_and_static_files() -> None:
    """bootstrap.sh installs a built package (pip install .), not the checkout: every file the
    web app reads must be package data."""
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["web"]
    shipped = {path for pattern in globs for path in (REPO / "web").glob(pattern)}
    needed = {
        path
        for path in (REPO / "web").rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
    }
    assert needed and needed <= shipped, sorted(str(p.relative_to(REPO)) for p in needed - shipped)


def test_the_env_file_example_is_valid_settings() -> None:
    env = env_file(EC2 / "othermail.env.example")
    rendered = {
        key: placed(value.replace("__DB_PASSWORD__", "pw").replace("__SECRET_KEY__", "key"))
        for key, value in env.items()
    }
    settings = Settings.from_env(rendered)
    assert settings.domains == (HOST,)
    assert settings.data_dir == Path("/var/lib/othermail")
    url = make_url(settings.database_url)
    assert (url.drivername, url.username, url.password, url.database) == (
        "mysql+pymysql",
        "othermail",
        "pw",
        "othermail",
    )
    assert url.query == {"unix_socket": "/run/mysqld/mysqld.sock"}
    # every variable it names, set or commented out, is one othermail reads
    known = set(re.findall(r'"([A-Z0-9_]+)"', (REPO / "forwarder" / "settings.py").read_text()))
    named = re.findall(r"^#?(OTHERMAIL_[A-Z0-9_]+)=", (EC2 / "othermail.env.example").read_text(), re.M)
    unknown = [
        name for name in named if name.removeprefix("OTHERMAIL_") not in known and not name.startswith("OTHERMAIL_WEB_")
    ]
    assert named and not unknown


# --------------------------------------------------------------------------- nginx -t


def nginx_conf(tmp: Path, sites: list[Path], *, run: bool = False) -> Path:
    """Debian's /etc/nginx/nginx.conf with pid, logs and temporary files under ``tmp`` and the
    given sites in place of sites-enabled/*; uwsgi_params beside it, as in /etc/nginx."""
    debian = Path("/etc/nginx/nginx.conf")
    if not debian.exists():
        missing("/etc/nginx/nginx.conf is missing (apt-get install nginx)")
    conf = debian.read_text()
    user = "user root;" if os.geteuid() == 0 else ""  # workers must read tmp_path (mode 0700)
    conf = re.sub(r"(?m)^user [^;]*;", user, conf, count=1)
    conf = re.sub(r"(?m)^pid [^;]*;", f"pid {tmp}/nginx.pid;", conf, count=1)
    conf = re.sub(r"(?m)^error_log [^;]*;", f"error_log {tmp}/error.log;", conf, count=1)
    conf = re.sub(r"(?m)^(\s*)access_log [^;]*;", rf"\1access_log {tmp}/access.log;", conf, count=1)
    if run:
        conf = re.sub(r"(?m)^worker_processes [^;]*;", "worker_processes 1;", conf, count=1)
    temp = "".join(
        f"\n\t{kind}_temp_path {tmp}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = replace_once(conf, "http {\n", "http {\n" + temp + "\n")
    includes = "".join(f"\tinclude {site};\n" for site in sites)
    conf = replace_once(conf, "\tinclude /etc/nginx/sites-enabled/*;\n", includes)
    shutil.copy("/etc/nginx/uwsgi_params", tmp / "uwsgi_params")
    path = tmp / "nginx.conf"
    path.write_text(conf)
    return path


def self_signed(tmp: Path, name: str) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    fullchain, privkey = tmp / "fullchain.pem", tmp / "privkey.pem"
    fullchain.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    privkey.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return fullchain, privkey


def tls_site(tmp: Path) -> str:
    """othermail.conf as bootstrap.sh installs it, with a self-signed certificate in place of
    Let's Encrypt's."""
    fullchain, privkey = self_signed(tmp, HOST)
    site = placed((EC2 / "nginx" / "othermail.conf").read_text())
    site = replace_once(site, f"/etc/letsencrypt/live/{HOST}/fullchain.pem", str(fullchain))
    return replace_once(site, f"/etc/letsencrypt/live/{HOST}/privkey.pem", str(privkey))


def nginx_test(nginx: str, conf: Path, tmp: Path) -> str:
    result = subprocess.run(
        [nginx, "-t", "-c", str(conf), "-e", str(tmp / "error.log")], capture_output=True, text=True, timeout=60
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"the configuration file {conf} syntax is ok" in output
    assert f"configuration file {conf} test is successful" in output
    assert "[warn]" not in output and "[emerg]" not in output, output
    return output


def test_nginx_accepts_the_https_site(tmp_path: Path) -> None:
    nginx = tool("nginx", "nginx")
    site = tmp_path / "othermail.conf"
    site.write_text(tls_site(tmp_path))
    assert PLACEHOLDER not in site.read_text()
    nginx_test(nginx, nginx_conf(tmp_path, [site]), tmp_path)


def test_nginx_accepts_the_site_for_before_the_certificate(tmp_path: Path) -> None:
    nginx = tool("nginx", "nginx")
    site = tmp_path / "othermail-acme.conf"
    site.write_text(placed((EC2 / "nginx" / "othermail-acme.conf").read_text()))
    nginx_test(nginx, nginx_conf(tmp_path, [site]), tmp_path)


# --------------------------------------------------------------------------- systemd


@pytest.fixture
def units(tmp_path: Path) -> Path:
    """The units in one folder (they require each other), with the venv's othermail command
    replaced by a stub at a path that exists: verify checks every ExecStart= binary."""
    tool("uwsgi", "uwsgi")  # othermail-web.service runs /usr/bin/uwsgi
    stub = tmp_path / "venv" / "bin" / "othermail"
    stub.parent.mkdir(parents=True)
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    folder = tmp_path / "units"
    folder.mkdir()
    for name in UNITS + TIMERS:
        text = (EC2 / "systemd" / name).read_text()
        (folder / name).write_text(text.replace("/opt/othermail/.venv/bin/othermail", str(stub)))
    return folder


@pytest.mark.parametrize("name", UNITS + TIMERS)
def test_systemd_analyze_verifies_the_unit(units: Path, name: str) -> None:
    analyze = tool("systemd-analyze", "systemd")
    result = subprocess.run(
        [analyze, "verify", str(units / name)], capture_output=True, text=True, timeout=60, cwd=units
    )
    # No message is filtered: on Debian 12 (systemd 252, in a container without systemd as PID 1)
    # a correct unit verifies in silence.
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "" and result.stdout.strip() == "", result.stderr + result.stdout


@pytest.mark.parametrize("name", UNITS)
def test_the_unit_is_hardened(units: Path, name: str) -> None:
    """``systemd-analyze security`` rates the exposure from 0 (locked down) to 10; the units stay
    under 3.5 (they score 2.8 to 3.0 on systemd 252), so a lost protection shows up here."""
    analyze = tool("systemd-analyze", "systemd")
    result = subprocess.run(
        [analyze, "security", "--offline=true", "--threshold=35", "--no-pager", str(units / name)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=units,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    text = (units / name).read_text()
    for line in (
        "User=othermail",
        "Group=othermail",
        "EnvironmentFile=/etc/othermail/othermail.env",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/othermail",
        "PrivateTmp=yes",
        "ProtectHome=yes",
    ):
        assert f"\n{line}\n" in text, f"{name} lacks {line}"
    if name == "othermail-web.service":  # see test_uwsgi_exits_when_the_app_cannot_load
        assert "\nRestart=always\n" in text
    elif name not in ONESHOTS:
        assert "\nRestart=on-failure\n" in text
    if name != "othermail-migrate.service":
        assert "\nRequires=othermail-migrate.service\n" in text
        assert re.search(r"(?m)^After=.*\bothermail-migrate\.service\b", text)
    # RuntimeDirectory= is removed when its unit stops: only the web unit (the socket) has one
    assert ("\nRuntimeDirectory=othermail\n" in text) == (name == "othermail-web.service")
    if name == "othermail-smtp.service":
        assert "\nAmbientCapabilities=CAP_NET_BIND_SERVICE\n" in text
        assert "\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\n" in text
    else:
        assert "\nCapabilityBoundingSet=\n" in text


# --------------------------------------------------------------------------- shell scripts


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_shellcheck_passes(script: Path) -> None:
    shellcheck = tool("shellcheck", "shellcheck")
    result = subprocess.run([shellcheck, str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert os.access(script, os.X_OK), f"{script} is not executable"


@pytest.fixture
def harmless_path(tmp_path: Path) -> str:
    """A PATH with only what bootstrap.sh needs before its first change to the machine: should a
    check move after an apt-get or a useradd, the script fails instead of installing anything."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in ("dirname", "cat", "id"):
        (folder / name).symlink_to(shutil.which(name))
    return str(folder)


def test_bootstrap_explains_itself(harmless_path: str) -> None:
    result = subprocess.run(
        ["/bin/bash", str(EC2 / "bootstrap.sh"), "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": harmless_path},
    )
    assert result.returncode == 0, result.stderr
    assert "usage: bootstrap.sh [--smtp] [--no-mariadb] HOSTNAME" in result.stdout


@pytest.mark.parametrize(
    "arguments, status, message",
    [
        ([], 2, "usage:"),
        (["--bogus", HOST], 2, "usage:"),
        (["not_a_host"], 1, "not a host name: not_a_host"),
        (["localhost"], 1, "not a host name: localhost"),
        ([HOST, "extra.example.org"], 2, "usage:"),
    ],
)
def test_bootstrap_refuses_bad_arguments_before_changing_anything(
    harmless_path: str, arguments: list[str], status: int, message: str
) -> None:
    result = subprocess.run(
        ["/bin/bash", str(EC2 / "bootstrap.sh"), *arguments],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": harmless_path},
    )
    assert result.returncode == status, result.stderr
    assert message in result.stderr


# --------------------------------------------------------------------------- MariaDB


@pytest.mark.mariadb
def test_setup_sql_makes_an_account_limited_to_its_database(tmp_path: Path) -> None:
    """setup.sql as bootstrap.sh runs it (names made unique for the shared test server), twice;
    then the migrations run as that account through the example's URL, and the account sees
    no other database."""
    import pymysql

    from tests.conftest import admin_url

    admin = admin_url("mariadb")
    name = f"othermail_dt_{secrets.token_hex(4)}"
    password = secrets.token_hex(24)
    socket_path = Path("/run/mysqld/mysqld.sock")
    local = admin.host in ("127.0.0.1", "localhost") and socket_path.exists()
    sql = (EC2 / "mariadb" / "setup.sql").read_text().replace("__DB_PASSWORD__", password)
    sql = re.sub(r"\bothermail\b", name, sql)
    if not local:  # a server elsewhere is reached over TCP: the test account must accept that
        sql = sql.replace("'localhost'", "'%'")
    statements = [
        s.strip()
        for s in "\n".join(line for line in sql.splitlines() if not line.startswith("--")).split(";")
        if s.strip()
    ]
    assert len(statements) == 4

    def run_as_admin(*queries: str) -> None:
        connection = pymysql.connect(
            host=admin.host,
            port=admin.port or 3306,
            user=admin.username,
            password=admin.password or "",
            autocommit=True,
        )
        try:
            with connection.cursor() as cursor:
                for query in queries:
                    cursor.execute(query)
        finally:
            connection.close()

    try:
        run_as_admin(*statements)
        run_as_admin(*statements)  # again: bootstrap.sh may
        example = env_file(EC2 / "othermail.env.example")["OTHERMAIL_DATABASE_URL"]
        url = re.sub(r"\bothermail\b", name, example.replace("__DB_PASSWORD__", password))
        if not local:
            url = (
                make_url(url)
                .set(host=admin.host, port=admin.port or 3306, query={})
                .render_as_string(hide_password=False)
            )
        env = {**os.environ, "OTHERMAIL_DATABASE_URL": url, "OTHERMAIL_DATA_DIR": str(tmp_path)}
        result = subprocess.run(
            [str(Path(sys.executable).with_name("othermail")), "db", "upgrade"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        engine = create_engine(url)
        try:
            with engine.connect() as connection:
                databases = set(connection.scalars(text("SHOW DATABASES")))
                assert databases == {"information_schema", name}
                grants = " ".join(connection.scalars(text("SHOW GRANTS")))
                assert "ON *.*" not in grants.replace("USAGE ON *.*", "") and "WITH GRANT OPTION" not in grants
                tables = set(connection.scalars(text("SHOW TABLES")))
                assert {"users", "aliases", "alembic_version"} <= tables
                collation = connection.scalar(text("SELECT @@collation_database"))
                assert collation == "utf8mb4_bin"
        finally:
            engine.dispose()
    finally:
        host = "'localhost'" if local else "'%'"
        run_as_admin(f"DROP DATABASE IF EXISTS `{name}`", f"DROP USER IF EXISTS '{name}'@{host}")


# --------------------------------------------------------------------------- uWSGI and nginx, running


@dataclass
class Stack:
    tmp: Path
    data: Path
    uwsgi: subprocess.Popen
    uwsgi_log: Path
    http_port: int  # uWSGI's own http-socket
    notices: list[tuple[int | None, bytes]] = field(default_factory=list)
    nginx: subprocess.Popen | None = None
    nginx_log: Path | None = None
    web_port: int = 0  # nginx, plain HTTP
    tls_port: int = 0  # nginx, HTTPS
    cafile: Path | None = None

    def logs(self) -> str:
        text = "uWSGI:\n" + tail(self.uwsgi_log)
        if self.nginx_log:
            text += "\nnginx:\n" + tail(self.nginx_log) + "\n" + tail(self.tmp / "nginx" / "error.log")
        return text


def _debian_venv(tmp: Path) -> Path:
    """A venv of Debian's python3, as bootstrap.sh makes /opt/othermail/.venv; its packages are
    this project's venv's (a .pth file adds them), which fits when both are the same minor
    version of Python. A venv of another Python build cannot serve: the plugin then loads that
    build's standard library (pyenv's 3.11.7 _ssl needs symbols Debian's 3.11.2 lacks)."""
    debian = Path("/usr/bin/python3")
    if not debian.exists():
        missing("/usr/bin/python3 is missing (apt-get install python3)")
    version = subprocess.run(
        [str(debian), "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True, text=True, check=True
    ).stdout.split()
    ours = [str(part) for part in sys.version_info[:2]]
    if version != ours:
        missing(
            f"Debian's python3 is {'.'.join(version)} and this venv's {'.'.join(ours)}: the project's "
            "packages cannot be lent to the uWSGI plugin"
        )
    venv = tmp / "venv"
    subprocess.run([str(debian), "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site_packages = venv / "lib" / f"python{'.'.join(ours)}" / "site-packages"
    (site_packages / "othermail-test.pth").write_text(
        f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n"
    )
    return venv


def _uwsgi_ini(tmp: Path, venv: Path, http_port: int) -> Path:
    """The project's ini with the unix socket and the venv under tmp, and an http-socket too
    (the socket's owner othermail:www-data does not exist here)."""
    ini = (EC2 / "uwsgi" / "othermail.ini").read_text()
    ini = replace_once(
        ini,
        "\nsocket = /run/othermail/uwsgi.sock\n",
        f"\nsocket = {tmp}/uwsgi.sock\nhttp-socket = 127.0.0.1:{http_port}\n",
    )
    ini = replace_once(ini, "\nvirtualenv = /opt/othermail/.venv\n", f"\nvirtualenv = {venv}\n")
    ini = replace_once(ini, "\nchown-socket = othermail:www-data\n", "\n")
    path = tmp / "uwsgi.ini"
    path.write_text(ini)
    return path


def _service_environment(data: Path, notify: Path) -> dict[str, str]:
    """The example env file, as systemd hands it to the service, with what this machine lacks
    replaced: SQLite in the data folder instead of MariaDB, the local outbox instead of SES."""
    env = {
        key: placed(value.replace("__SECRET_KEY__", "uwsgi-test-secret"))
        for key, value in env_file(EC2 / "othermail.env.example").items()
    }
    env.update(OTHERMAIL_DATA_DIR=str(data), OTHERMAIL_DATABASE_URL="", OTHERMAIL_SENDER="outbox")
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "NOTIFY_SOCKET": str(notify), **env}


def _wait_http(stack: Stack, port: int, path: str, deadline: float) -> None:
    while True:
        if stack.uwsgi.poll() is not None:
            pytest.fail(f"uWSGI exited with {stack.uwsgi.returncode}\n{stack.logs()}", pytrace=False)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", path, headers={"Host": HOST})
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        if time.monotonic() > deadline:
            pytest.fail(f"nothing answered on 127.0.0.1:{port}{path}\n{stack.logs()}", pytrace=False)
        time.sleep(0.2)


def _stop(process: subprocess.Popen | None, signum: int) -> None:
    if process is not None and process.poll() is None:
        process.send_signal(signum)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    uwsgi = tool("uwsgi", "uwsgi")
    if not PYTHON3_PLUGIN.exists():
        missing(f"{PYTHON3_PLUGIN} is missing (apt-get install uwsgi-plugin-python3; .ci/run installs it)")
    tmp = tmp_path_factory.mktemp("ec2")
    data = tmp / "data"
    data.mkdir()
    venv = _debian_venv(tmp)
    url = f"sqlite:///{data / 'othermail.db'}"  # where OTHERMAIL_DATA_DIR puts it without a URL
    migrations.upgrade(url)
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            session.add(User(email="ann@example.org", password_hash=hash_password("correct horse battery")))
            session.commit()
    finally:
        engine.dispose()

    # systemd's side of Type=notify: a datagram socket that learns each sender's pid
    notify_path = tmp / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    notify.settimeout(0.2)

    http_port = free_tcp_port()
    ini = _uwsgi_ini(tmp, venv, http_port)
    log = tmp / "uwsgi.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [uwsgi, "--ini", str(ini)],
            cwd=tmp,
            env=_service_environment(data, notify_path),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    running = Stack(tmp=tmp, data=data, uwsgi=process, uwsgi_log=log, http_port=http_port)
    try:
        deadline = time.monotonic() + 60
        while not any(b"READY=1" in message for _, message in running.notices) and time.monotonic() < deadline:
            try:
                message, ancillary, _, _ = notify.recvmsg(4096, socket.CMSG_SPACE(12))
            except TimeoutError:
                if process.poll() is not None:
                    break
                continue
            pid = next(
                (
                    struct.unpack("3i", data_[:12])[0]
                    for level, kind, data_ in ancillary
                    if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS
                ),
                None,
            )
            running.notices.append((pid, message))
        _wait_http(running, http_port, "/signin", deadline)

        nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
        if nginx:
            _start_nginx(running, nginx)
        yield running
    finally:
        notify.close()
        _stop(running.nginx, signal.SIGQUIT)
        _stop(process, signal.SIGTERM)


def _start_nginx(stack: Stack, nginx: str) -> None:
    """The HTTPS site on two free loopback ports, in front of uWSGI's unix socket, with the
    static folder, the webroot and the certificate under tmp."""
    tmp = stack.tmp / "nginx"
    tmp.mkdir()
    stack.web_port, stack.tls_port = free_tcp_port(), free_tcp_port()
    site = tls_site(tmp)
    site = "\n".join(line for line in site.splitlines() if "listen [::]" not in line)
    for old, new in (
        (" 80 default_server;", f" 127.0.0.1:{stack.web_port} default_server;"),
        (" 80;", f" 127.0.0.1:{stack.web_port};"),
        (" 443 ssl http2 default_server;", f" 127.0.0.1:{stack.tls_port} ssl http2 default_server;"),
        (" 443 ssl http2;", f" 127.0.0.1:{stack.tls_port} ssl http2;"),
    ):
        site = replace_once(site, f"listen{old}", f"listen{new}")
    # location / and the one that keeps the mailed links' secrets out of the access log
    assert site.count("unix:/run/othermail/uwsgi.sock;") == 2
    site = site.replace("unix:/run/othermail/uwsgi.sock;", f"unix:{stack.tmp}/uwsgi.sock;")
    (tmp / "static").symlink_to(REPO / "web" / "static")  # bootstrap.sh's link, to the package's folder
    site = replace_once(site, "alias /opt/othermail/static/;", f"alias {tmp}/static/;")
    webroot = tmp / "letsencrypt"
    (webroot / ".well-known" / "acme-challenge").mkdir(parents=True)
    (webroot / ".well-known" / "acme-challenge" / "token-1").write_text("token-1.thumbprint")
    site = replace_once(site, "root /var/www/letsencrypt;", f"root {webroot};")
    (tmp / "othermail.conf").write_text(site)
    conf = nginx_conf(tmp, [tmp / "othermail.conf"], run=True)
    nginx_test(nginx, conf, tmp)
    stack.cafile = tmp / "fullchain.pem"
    stack.nginx_log = tmp / "nginx.out"
    with stack.nginx_log.open("wb") as out:
        stack.nginx = subprocess.Popen(
            [nginx, "-c", str(conf), "-e", str(tmp / "error.log"), "-g", "daemon off;"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", stack.tls_port), timeout=1).close()
            return
        except OSError:
            if stack.nginx.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"nginx did not start\n{stack.logs()}", pytrace=False)
            time.sleep(0.1)


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def _tls(stack: Stack, sni: str = HOST, alpn: list[str] | None = None) -> ssl.SSLSocket:
    """A TLS connection to nginx that checks SNI and the certificate as a browser does."""
    if stack.nginx is None:
        missing("nginx is not installed (apt-get install nginx; .ci/run installs it)")
    context = ssl.create_default_context(cafile=str(stack.cafile))
    if alpn:
        context.set_alpn_protocols(alpn)
    raw = socket.create_connection(("127.0.0.1", stack.tls_port), timeout=10)
    try:
        return context.wrap_socket(raw, server_hostname=sni)
    except BaseException:
        raw.close()
        raise


def _https(
    stack: Stack,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: str | None = None,
    sni: str = HOST,
) -> Reply:
    tls = _tls(stack, sni)
    connection = http.client.HTTPConnection("127.0.0.1", stack.tls_port, timeout=10)
    connection.sock = tls
    try:
        connection.request(method, path, body=body, headers={"Host": HOST, **(headers or {})})
        response = connection.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        connection.close()


def _http(port: int, path: str, host: str = HOST) -> Reply:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers={"Host": host})
        response = connection.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        connection.close()


def test_uwsgi_serves_the_app(stack: Stack) -> None:
    page = _http(stack.http_port, "/signin")
    assert page.status == 200, stack.logs()
    assert '<form method="post"' in page.text and 'name="password"' in page.text
    assert page.headers["Content-Security-Policy"]
    style = _http(stack.http_port, "/static/style.css")
    assert style.status == 200
    assert style.body == (REPO / "web" / "static" / "style.css").read_bytes()
    log = stack.uwsgi_log.read_text(errors="replace")
    assert "PEP 405 virtualenv detected" in log and "spawned uWSGI worker 2" in log and "(default app)" in log


def test_uwsgi_tells_systemd_it_is_ready(stack: Stack) -> None:
    """othermail-web.service has Type=notify, NotifyAccess=main: READY=1 must come from the
    main process (uWSGI's master), the one systemd started."""
    ready = [pid for pid, message in stack.notices if b"READY=1" in message]
    assert ready == [stack.uwsgi.pid], (stack.notices, stack.uwsgi.pid)


def test_nginx_serves_the_app_over_https(stack: Stack) -> None:
    page = _https(stack, "GET", "/signin")
    assert page.status == 200, stack.logs()
    assert 'name="password"' in page.text
    assert page.headers["Strict-Transport-Security"] == "max-age=63072000"
    assert page.headers["X-Frame-Options"] == "DENY"  # the app's own headers pass through
    assert "nginx/" not in (page.headers["Server"] or "")  # server_tokens off
    with _tls(stack, alpn=["h2", "http/1.1"]) as tls:
        assert tls.selected_alpn_protocol() == "h2"  # http2 on the listen line


def test_nginx_serves_static_files_itself(stack: Stack) -> None:
    def seen_by_uwsgi() -> int:
        return stack.uwsgi_log.read_text(errors="replace").count("GET /static/style.css")

    before = seen_by_uwsgi()
    style = _https(stack, "GET", "/static/style.css")
    assert style.status == 200
    assert style.body == (REPO / "web" / "static" / "style.css").read_bytes()
    assert style.headers["Content-Type"] == "text/css"
    assert style.headers["Cache-Control"] == "max-age=3600"
    assert style.headers["Strict-Transport-Security"] == "max-age=63072000"
    assert style.headers["X-Content-Type-Options"] == "nosniff"
    assert seen_by_uwsgi() == before  # nginx answered from the folder, uWSGI never saw it
    assert _https(stack, "GET", "/static/no-such-file.css").status == 404


def test_nginx_redirects_http_and_answers_the_acme_challenge(stack: Stack) -> None:
    if stack.nginx is None:
        missing("nginx is not installed (apt-get install nginx; .ci/run installs it)")
    redirect = _http(stack.web_port, "/aliases?page=2")
    assert redirect.status == 301
    assert redirect.headers["Location"] == f"https://{HOST}/aliases?page=2"
    challenge = _http(stack.web_port, "/.well-known/acme-challenge/token-1")
    assert (challenge.status, challenge.text) == (200, "token-1.thumbprint")
    assert challenge.headers["Content-Type"] == "text/plain"


def test_nginx_answers_no_other_name(stack: Stack) -> None:
    if stack.nginx is None:
        missing("nginx is not installed (apt-get install nginx; .ci/run installs it)")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        _http(stack.web_port, "/signin", host="evil.example")
    with pytest.raises(ssl.SSLError):
        _https(stack, "GET", "/signin", sni="evil.example")


def test_forged_forwarding_headers_are_replaced(stack: Stack) -> None:
    """A client's own X-Forwarded-* cannot move its rate-limit bucket or poison the password
    reset link: nginx replaces them, and the app (ProxyFix) trusts only nginx's."""
    page = _https(stack, "GET", "/reset")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    cookie = page.headers["Set-Cookie"].split(";", 1)[0]
    forged = {"X-Forwarded-For": "198.51.100.66", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http"}
    reply = _https(
        stack,
        "POST",
        "/reset",
        body=urllib.parse.urlencode({"csrf_token": token, "email": "ann@example.org"}),
        headers={
            "Cookie": cookie,
            "Referer": f"https://{HOST}/reset",
            "Content-Type": "application/x-www-form-urlencoded",
            **forged,
        },
    )
    assert reply.status == 302, reply.text[:500]
    new = stack.data / "outbox" / "new"
    for _ in range(200):  # the reset mail leaves from the app's mail worker, after the answer (review F2)
        mails = list(new.iterdir()) if new.is_dir() else []
        if mails:
            break
        time.sleep(0.05)
    assert len(mails) == 1
    message = email.message_from_bytes(mails[0].read_bytes(), policy=email.policy.default)
    links = re.findall(r"https?://\S+", message.get_content())
    assert len(links) == 1 and links[0].startswith(f"https://{HOST}/reset/"), links
    engine = create_engine(f"sqlite:///{stack.data / 'othermail.db'}")
    try:
        with engine.connect() as connection:
            keys = set(connection.scalars(select(RateLimitHit.key)))
    finally:
        engine.dispose()
    # 12.5's cap and the reset mails' own cap (review F1) aside
    assert {key for key in keys if not key.startswith(("recipient-mail:", "reset-mail:"))} == {"reset:127.0.0.1"}


def test_the_token_of_a_reset_link_stays_out_of_the_access_log(stack: Stack) -> None:
    """Issue 12.8: nginx logs neither /reset/<token> nor anything after it with the token; the app
    moves it out of the URL at once (after test_forged_forwarding_headers_are_replaced, whose mail
    holds the link)."""
    if stack.nginx is None:
        missing("nginx is not installed (apt-get install nginx; .ci/run installs it)")
    mails = sorted((stack.data / "outbox" / "new").iterdir())
    assert mails
    message = email.message_from_bytes(mails[-1].read_bytes(), policy=email.policy.default)
    (link,) = re.findall(r"https?://\S+", message.get_content())
    path = urllib.parse.urlsplit(link).path
    token = path.rsplit("/", 1)[1]
    opened = _https(stack, "GET", path)
    assert opened.status == 302 and token not in opened.headers["Location"]
    assert _https(stack, "GET", "/signin").status == 200
    log = (stack.tmp / "nginx" / "access.log").read_text()
    assert "GET /signin" in log and token not in log and "/reset/" not in log


def test_uwsgi_stops_on_sigterm(stack: Stack) -> None:
    """systemctl stop sends SIGTERM: with die-on-term uWSGI ends its workers and exits (last test
    of the module: the stack is gone afterwards)."""
    _stop(stack.nginx, signal.SIGQUIT)
    if stack.nginx is not None:
        assert stack.nginx.returncode == 0, stack.logs()
    stack.uwsgi.send_signal(signal.SIGTERM)
    assert stack.uwsgi.wait(30) == 0, stack.logs()
    assert "goodbye to uWSGI" in stack.uwsgi_log.read_text(errors="replace")
    assert not (stack.tmp / "uwsgi.sock").exists()  # vacuum


def test_uwsgi_exits_when_the_app_cannot_load(tmp_path: Path) -> None:
    """need-app: an app that fails to import ends uWSGI instead of serving errors; systemd
    restarts it and the journal has the traceback. The exit status is not always an error: with
    lazy-apps a worker that cannot load the app signals the master, which then exits with 0 or 22
    depending on which it notices first, hence Restart=always in othermail-web.service."""
    uwsgi = tool("uwsgi", "uwsgi")
    if not PYTHON3_PLUGIN.exists():
        missing(f"{PYTHON3_PLUGIN} is missing (apt-get install uwsgi-plugin-python3; .ci/run installs it)")
    venv = _debian_venv(tmp_path)
    ini = _uwsgi_ini(tmp_path, venv, free_tcp_port())
    ini.write_text(replace_once(ini.read_text(), "module = web.wsgi:app", "module = web.no_such_module:app"))
    result = subprocess.run(
        [uwsgi, "--ini", str(ini)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "OTHERMAIL_DATA_DIR": str(tmp_path)},
    )
    output = result.stdout + result.stderr
    assert "ModuleNotFoundError: No module named 'web.no_such_module'" in output
    assert ("need-app requested, destroying the instance" in output and result.returncode != 0) or (
        "no app loaded. GAME OVER" in output and "goodbye to uWSGI" in output
    ), output
