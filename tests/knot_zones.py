"""A real authoritative name server for tests: Knot DNS (``knotd``) on 127.0.0.1 at a free port.

The same approach as tests/forwarder/ops/test_dns_doctor.py (which has its own fixed zones): here the
zones are named when the server starts and their content is set by the test as it goes
(:meth:`KnotZones.set_zone`), e.g. once the web app has shown the records to publish.
Without knotd the tests skip, naming the package, except under CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rdatatype
import pytest

from tests.support.factories import free_udp_and_tcp_port
from tests.support.tools import missing

SBIN = "/usr/sbin:/usr/local/sbin:/sbin:"


def _tool(name: str) -> str:
    found = shutil.which(name, path=SBIN + os.environ.get("PATH", ""))
    if found is None:
        missing(f"{name} is not installed (apt-get install knot; .ci/run installs it)")
    return found


class KnotZones:
    def __init__(self, folder: Path, zones: Iterable[str]) -> None:
        self.folder = folder
        self.zones = tuple(zones)
        self.port = free_udp_and_tcp_port()  # knotd binds TCP too
        self.config = folder / "knot.conf"
        self._serials = dict.fromkeys(self.zones, 1)
        self._knotc = _tool("knotc")
        knotd = _tool("knotd")
        for zone in self.zones:
            self._write(zone, "", 1)
        zone_lines = "".join(f"  - domain: {zone}\n" for zone in self.zones)
        self.config.write_text(
            "server:\n"
            f'    rundir: "{folder}"\n'
            f"    listen: 127.0.0.1@{self.port}\n"
            "    udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\n"
            f'database:\n    storage: "{folder}"\n'
            "log:\n  - target: stderr\n    any: info\n"
            "template:\n  - id: default\n"
            f'    storage: "{folder}"\n'
            '    file: "%s.zone"\n'
            "    journal-content: none\n    zonefile-sync: -1\n    semantic-checks: off\n"
            f"zone:\n{zone_lines}"
        )
        with (folder / "knotd.log").open("wb") as log:
            self.process = subprocess.Popen([knotd, "-c", str(self.config)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while self._serial(self.zones[0]) != 1:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"knotd did not start on port {self.port}:\n{self.log()}", pytrace=False)
            time.sleep(0.05)

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        return (self.folder / "knotd.log").read_text(errors="replace")

    def _write(self, zone: str, body: str, serial: int) -> None:
        (self.folder / f"{zone}.zone").write_text(
            f"$ORIGIN {zone}.\n$TTL 300\n"
            f"@ SOA ns.{zone}. hostmaster.{zone}. {serial} 3600 600 86400 300\n"
            f"@ NS ns\nns A 127.0.0.1\n{body}\n"
        )

    def _serial(self, zone: str) -> int | None:
        try:
            response = dns.query.udp(
                dns.message.make_query(f"{zone}.", "SOA"), "127.0.0.1", port=self.port, timeout=0.5
            )
        except (dns.exception.Timeout, OSError):
            return None
        for rrset in response.answer:
            if rrset.rdtype == dns.rdatatype.SOA:
                return int(rrset[0].serial)
        return None

    def set_zone(self, zone: str, lines: Iterable[str]) -> None:
        """Replace the zone's records with ``lines`` (zone-file lines, absolute names welcome) and wait
        until knotd serves them."""
        serial = self._serials[zone] + 1
        self._serials[zone] = serial
        self._write(zone, "\n".join(lines), serial)
        subprocess.run(
            [self._knotc, "-c", str(self.config), "-b", "zone-reload", f"{zone}."],
            check=True,
            capture_output=True,
            timeout=20,
        )
        deadline = time.monotonic() + 10
        while self._serial(zone) != serial:
            if time.monotonic() > deadline:
                pytest.fail(f"knotd did not load serial {serial} of {zone}:\n{self.log()}", pytrace=False)
            time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def knot_zones(folder: Path, zones: Iterable[str]) -> Iterator[KnotZones]:
    server = KnotZones(folder, zones)
    try:
        yield server
    finally:
        server.stop()
