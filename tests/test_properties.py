"""Property tests: names, metadata and data round-trip through Hubic and Swift.

Hypothesis draws object names, metadata and object sizes, and each example
goes through `lhubic.Hubic` to the real Swift of the local service and back.
A plain python-swiftclient connection, which shares no code with lhubic's
transfers, reads what Swift stored.

``HYPOTHESIS_PROFILE`` picks how many examples run: ``ci`` (the default, a
few seconds), ``dev`` or ``thorough``.
"""

from __future__ import annotations

import hashlib
import io
import os
import pathlib
import random
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import new_user_hubic
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from swiftclient.client import Connection

from lhubic import Hubic, HubicObjectNotFound
from lhubic.listing import iter_objects
from lhubic.names import MAX_OBJECT_NAME_BYTES

CONTAINER = "properties"
MiB = 1024 * 1024

# Examples per property for each profile. The data, large-object and listing
# properties send the most requests, so they run a third as many.
_PROFILE_EXAMPLES = {"ci": 15, "dev": 60, "thorough": 300}
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
if PROFILE not in _PROFILE_EXAMPLES:
    raise ValueError(
        f"invalid HYPOTHESIS_PROFILE {PROFILE!r}: use one of "
        f"{', '.join(sorted(_PROFILE_EXAMPLES))}"
    )

for _name, _examples in _PROFILE_EXAMPLES.items():
    settings.register_profile(
        f"lhubic-{_name}",
        max_examples=_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
NAME_SETTINGS = settings.get_profile(f"lhubic-{PROFILE}")
HEAVY_SETTINGS = settings(
    NAME_SETTINGS, max_examples=max(3, _PROFILE_EXAMPLES[PROFILE] // 3)
)


@pytest.fixture(scope="module")
def hubic(hubic_server: Any) -> Iterator[Hubic]:
    with new_user_hubic(hubic_server, "properties", CONTAINER) as connection:
        yield connection


@pytest.fixture(scope="module")
def direct(hubic: Hubic) -> Iterator[Connection]:
    """A plain swiftclient connection with Hubic's storage URL and token."""
    hubic.head_account()
    connection = Connection(
        preauthurl=hubic.os_storage_url, preauthtoken=hubic.os_auth_token, retries=1
    )
    yield connection
    connection.close()


def _utf8_size(text: str) -> int:
    return len(text.encode("utf-8"))


# Any character Swift accepts in a name: valid UTF-8 (so no lone surrogates)
# and no NUL.
NAME_CHARACTERS = st.characters(codec="utf-8", exclude_characters="\x00")
SEGMENTS = st.text(NAME_CHARACTERS, max_size=12).filter(
    lambda segment: segment not in (".", "..")
)
SHORT_NAMES = st.lists(SEGMENTS, min_size=1, max_size=5).map("/".join).filter(bool)
LONG_NAMES = st.builds(
    lambda character, filler: (
        (character * 1024)[: 1024 // _utf8_size(character)] + filler
    ),
    st.sampled_from(["a", "\u00e9", "\u6f22", "\U0001f600", "%", " "]),
    st.sampled_from(["", "x"]),
)
OBJECT_NAMES = st.one_of(SHORT_NAMES, LONG_NAMES).filter(
    lambda name: 0 < _utf8_size(name) <= MAX_OBJECT_NAME_BYTES
)


@NAME_SETTINGS
@given(name=OBJECT_NAMES)
def test_object_name_round_trips(hubic: Hubic, direct: Connection, name: str) -> None:
    data = name.encode("utf-8")

    hubic.put_object(CONTAINER, name, data)
    _, body = hubic.get_object(CONTAINER, name)
    _, direct_body = direct.get_object(CONTAINER, name)
    _, listing = direct.get_container(CONTAINER, prefix=name, full_listing=True)
    hubic.delete_object(CONTAINER, name)

    assert body == data
    assert direct_body == data
    assert name in [entry["name"] for entry in listing]
    with pytest.raises(HubicObjectNotFound):
        hubic.head_object(CONTAINER, name)


# Metadata: HTTP removes a value's outer spaces and tabs and forbids control
# characters, so text values have neither. Swift limits a value to 256 bytes.
META_TEXT = (
    st.text(
        st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp")),
        max_size=60,
    )
    .map(lambda text: text.strip(" \t"))
    .filter(lambda text: _utf8_size(text) <= 256)
)
META_VALUES = st.one_of(
    META_TEXT,
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.integers().map(str),
    st.booleans().map(lambda flag: str(flag).lower()),
    st.text(st.sampled_from(" abc\u00e9\u6f22"), max_size=20).map(
        lambda text: text.strip(" ")
    ),
)
META_KEYS = st.from_regex(
    r"[A-Za-z0-9]([A-Za-z0-9-]{0,20}[A-Za-z0-9])?", fullmatch=True
)
METADATA = st.dictionaries(
    META_KEYS.map(str.lower), META_VALUES, min_size=1, max_size=6
)


def _meta_headers(metadata: dict[str, Any]) -> dict[str, Any]:
    return {f"X-Object-Meta-{key}": value for key, value in metadata.items()}


def _stored_meta(headers: dict[str, str]) -> dict[str, str]:
    prefix = "x-object-meta-"
    return {
        key[len(prefix) :]: value
        for key, value in headers.items()
        if key.lower().startswith(prefix)
    }


@NAME_SETTINGS
@given(metadata=METADATA, update=METADATA)
def test_metadata_round_trips(
    hubic: Hubic,
    direct: Connection,
    metadata: dict[str, Any],
    update: dict[str, Any],
) -> None:
    name = f"meta/{secrets.token_hex(4)}"
    expected = {key: str(value) for key, value in metadata.items()}
    updated = {key: str(value) for key, value in update.items()}

    hubic.put_object(CONTAINER, name, b"m", headers=_meta_headers(metadata))
    stored = _stored_meta(hubic.head_object(CONTAINER, name))
    direct_stored = _stored_meta(direct.head_object(CONTAINER, name))
    hubic.post_object(CONTAINER, name, headers=_meta_headers(update))
    after_post = _stored_meta(direct.head_object(CONTAINER, name))
    hubic.delete_object(CONTAINER, name)

    assert stored == expected
    assert direct_stored == expected
    # A POST replaces every user metadata item of an object.
    assert after_post == updated


# Sizes: small ones, sizes around 64 KiB (python-swiftclient's read size for
# files) and 1 MiB (lhubic's chunk size), and some up to 3 MiB. Each example
# draws the data from a seed.
BOUNDARY_SIZES = [
    0,
    1,
    65535,
    65536,
    65537,
    MiB - 1,
    MiB,
    MiB + 1,
    3 * MiB,
]
SIZES = st.one_of(
    st.integers(min_value=0, max_value=4096),
    st.sampled_from(BOUNDARY_SIZES),
    st.integers(min_value=0, max_value=3 * MiB),
)
SOURCES = st.sampled_from(["bytes", "seekable file", "chunk iterator"])


def _data(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _chunks(data: bytes, pieces: int) -> Iterator[bytes]:
    step = max(1, len(data) // pieces + 1)
    for start in range(0, len(data), step):
        yield data[start : start + step]


def _source(kind: str, data: bytes, pieces: int) -> Any:
    if kind == "bytes":
        return data
    if kind == "seekable file":
        return io.BytesIO(data)
    return _chunks(data, pieces)


@HEAVY_SETTINGS
@given(
    size=SIZES,
    seed=st.integers(min_value=0, max_value=2**32),
    kind=SOURCES,
    pieces=st.integers(min_value=1, max_value=9),
    read_chunk=st.sampled_from([None, 1, 4096, 65536, MiB]),
)
def test_data_round_trips(
    hubic: Hubic,
    direct: Connection,
    size: int,
    seed: int,
    kind: str,
    pieces: int,
    read_chunk: int | None,
) -> None:
    name = f"data/{secrets.token_hex(4)}"
    data = _data(seed, size)
    md5 = hashlib.md5(data).hexdigest()  # noqa: S324 - Swift's ETag is an MD5

    etag = hubic.put_object(CONTAINER, name, _source(kind, data, pieces))
    headers, body = hubic.get_object(CONTAINER, name, resp_chunk_size=read_chunk)
    received = body if read_chunk is None else b"".join(body)
    direct_headers, direct_body = direct.get_object(CONTAINER, name)
    hubic.delete_object(CONTAINER, name)

    assert etag == md5
    assert received == data
    assert int(headers["content-length"]) == size
    assert direct_body == data
    assert direct_headers["etag"] == md5


@HEAVY_SETTINGS
@given(
    size=st.integers(min_value=MiB + 1, max_value=3 * MiB + 5),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_large_object_file_round_trips(
    hubic: Hubic,
    direct: Connection,
    tmp_path_factory: pytest.TempPathFactory,
    size: int,
    seed: int,
) -> None:
    folder = tmp_path_factory.mktemp("large")
    source = folder / "source.bin"
    target = folder / "target.bin"
    data = _data(seed, size)
    source.write_bytes(data)
    name = f"large/{secrets.token_hex(4)}"

    hubic.upload_file(
        CONTAINER, name, source, segment_size=MiB, large_object_threshold=MiB
    )
    hubic.download_file(CONTAINER, name, target)
    headers, direct_body = direct.get_object(CONTAINER, name)
    hubic.delete_object(CONTAINER, name)

    assert target.read_bytes() == data
    assert direct_body == data
    assert headers.get("x-static-large-object") == "True"
    _remove_folder(folder)


def _remove_folder(folder: pathlib.Path) -> None:
    for entry in folder.iterdir():
        entry.unlink()
    folder.rmdir()


@HEAVY_SETTINGS
@given(
    names=st.lists(SHORT_NAMES, min_size=1, max_size=12, unique=True),
    page_size=st.integers(min_value=1, max_value=5),
)
def test_listing_pages_return_every_name(
    hubic: Hubic, names: list[str], page_size: int
) -> None:
    container = f"listing-{secrets.token_hex(4)}"
    hubic.put_container(container)
    for name in names:
        hubic.put_object(container, name, b"")

    listed = [
        entry["name"] for entry in iter_objects(hubic, container, page_size=page_size)
    ]
    for name in names:
        hubic.delete_object(container, name)
    hubic.delete_container(container)

    # Swift orders a listing by the names' UTF-8 bytes.
    assert listed == sorted(names, key=lambda name: name.encode("utf-8"))
