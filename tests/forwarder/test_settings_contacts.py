"""OTHERMAIL_CONTACT_KEYS and OTHERMAIL_THREAD_DAYS (issue 14), and the runtime's sealer built from them."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from forwarder.adapters.sealing import Sealer
from forwarder.errors import SettingsError
from forwarder.runtime import Runtime
from forwarder.settings import Settings

KEY1 = base64.urlsafe_b64encode(bytes(range(32))).decode()
KEY2 = base64.urlsafe_b64encode(bytes(range(32, 64))).decode()


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.contact_keys == ()
    assert settings.thread_days == 180


def test_keys_are_read_in_order_and_never_shown() -> None:
    settings = Settings.from_env({"OTHERMAIL_CONTACT_KEYS": f"new:{KEY2}, old:{KEY1}", "OTHERMAIL_THREAD_DAYS": "30"})
    assert settings.contact_keys == (("new", bytes(range(32, 64))), ("old", bytes(range(32))))
    assert settings.thread_days == 30
    assert KEY1 not in repr(settings) and KEY2 not in repr(settings) and "contact_keys='***'" in repr(settings)


@pytest.mark.parametrize(
    "value",
    [
        "nokey",
        f":{KEY1}",
        "k1:not-base64!",
        "k1:" + base64.urlsafe_b64encode(bytes(16)).decode(),
        f"k1:{KEY1},k1:{KEY2}",
        f"k 1:{KEY1}",
        ",",
    ],
)
def test_a_bad_key_list_is_one_line_naming_the_variable_and_no_key(value: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"OTHERMAIL_CONTACT_KEYS": value})
    message = str(info.value)
    assert message.startswith("OTHERMAIL_CONTACT_KEYS ")
    assert "\n" not in message and KEY1 not in message and KEY2 not in message


@pytest.mark.parametrize("value", ["0", "x", "-3"])
def test_a_bad_thread_days_names_the_variable(value: str) -> None:
    with pytest.raises(SettingsError, match="^OTHERMAIL_THREAD_DAYS "):
        Settings.from_env({"OTHERMAIL_THREAD_DAYS": value})


def test_the_runtime_seals_with_the_configured_keys(tmp_path: Path) -> None:
    settings = Settings.from_env({"OTHERMAIL_DATA_DIR": str(tmp_path), "OTHERMAIL_CONTACT_KEYS": f"a:{KEY1}"})
    sealer = Runtime.build(settings).sealer
    assert isinstance(sealer, Sealer) and sealer.current_id == "a"
    assert not (tmp_path / "contact-keys").exists()


def test_the_one_box_makes_a_key_file_once_and_keeps_it(tmp_path: Path) -> None:
    settings = Settings.from_env({"OTHERMAIL_DATA_DIR": str(tmp_path / "data")})
    first = Runtime.build(settings).sealer
    path = tmp_path / "data" / "contact-keys"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    sealed = first.seal("ann@example.org")
    again = Runtime.build(settings).sealer
    assert again.open(sealed) == "ann@example.org"
    assert again.digest("ann@example.org") == first.digest("ann@example.org")


def test_a_key_file_with_a_bad_entry_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "contact-keys").write_text("junk\n")
    settings = Settings.from_env({"OTHERMAIL_DATA_DIR": str(tmp_path)})
    with pytest.raises(SettingsError, match="contact-keys"):
        Runtime.build(settings).sealer  # noqa: B018


def test_an_ses_ingress_needs_the_setting(tmp_path: Path) -> None:
    settings = Settings.from_env({"OTHERMAIL_DATA_DIR": str(tmp_path)})
    with pytest.raises(SettingsError, match="OTHERMAIL_CONTACT_KEYS"):
        Runtime.build(settings, ses_inbound=True).sealer  # noqa: B018
    assert not (tmp_path / "contact-keys").exists()


def test_a_sealer_can_be_handed_in(tmp_path: Path) -> None:
    sealer = Sealer([("t", bytes(32))])
    assert Runtime.build(Settings(data_dir=tmp_path), sealer=sealer).sealer is sealer


def test_the_runtime_builds_the_contact_book_from_its_parts(tmp_path: Path) -> None:
    from forwarder.adapters.sql.contacts import SqlContactBook
    from forwarder.ports import ContactBook

    sealer = Sealer([("t", bytes(32))])
    settings = Settings.from_env({"OTHERMAIL_DATA_DIR": str(tmp_path), "OTHERMAIL_THREAD_DAYS": "7"})
    runtime = Runtime.build(settings, sealer=sealer)
    contacts = runtime.contacts
    assert isinstance(contacts, SqlContactBook) and isinstance(contacts, ContactBook)
    assert contacts._sealer is sealer and contacts._thread_days == 7 and contacts._engine is runtime.engine
    assert not (tmp_path / "othermail.db").exists()  # nothing connected


def test_reading_settings_without_keys_needs_no_cryptography() -> None:
    """The web app's Lambda reads Settings at import time; the sealer's library loads only with keys."""
    import subprocess
    import sys

    code = (
        "import sys; from forwarder.settings import Settings; Settings.from_env({}); "
        "print('cryptography' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
