"""Which addresses a webhook may reach when private ones are denied: a name is judged by
every address it resolves to, IPv4-mapped IPv6 included."""

from __future__ import annotations

import pytest

from streamspace.control_plane.background.webhooks import DeniedAddress, denied, resolve


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.5",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fd00::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "224.0.0.1",
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254 (the cloud metadata address)
        "2002:a9fe:a9fe::1",  # 6to4 of the same
    ],
)
def test_private_and_reserved_addresses_are_denied(address: str) -> None:
    assert denied(address)


@pytest.mark.parametrize(
    "address", ["1.1.1.1", "8.8.8.8", "2606:4700:4700::1111", "64:ff9b::808:808"]
)
def test_public_addresses_pass(address: str) -> None:
    assert not denied(address)


async def test_a_name_resolving_to_loopback_is_refused_only_when_denied() -> None:
    with pytest.raises(DeniedAddress, match="private or reserved"):
        await resolve("localhost", 443, deny_private=True)
    assert denied(await resolve("localhost", 443, deny_private=False))
