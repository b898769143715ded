"""The address rules of the guarded URL fetch (vo/upload_fetch.py); the fetch itself is tested
against real servers in tests/conformance/test_tap_upload_url.py."""

from __future__ import annotations

import ipaddress

import pytest

from vo.upload_fetch import FetchPolicy, forbidden_address

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("address, forbidden", [
    ("127.0.0.1", True), ("127.3.4.5", True), ("10.0.0.1", True), ("172.16.0.1", True), ("192.168.1.1", True),
    ("169.254.169.254", True), ("100.64.0.1", True), ("0.0.0.0", True), ("224.0.0.1", True),
    ("255.255.255.255", True), ("::1", True), ("::", True), ("fe80::1", True), ("fc00::1", True),
    ("ff02::1", True), ("::ffff:127.0.0.1", True), ("::ffff:10.0.0.1", True), ("2002:7f00:1::1", True),
    ("2002:a00:1::1", True),
    ("8.8.8.8", False), ("193.206.0.1", False), ("2001:4860:4860::8888", False),
])
def test_forbidden_addresses(address: str, forbidden: bool) -> None:
    assert forbidden_address(ipaddress.ip_address(address)) is forbidden


def test_allow_list_by_name_address_and_network() -> None:
    policy = FetchPolicy(allow_hosts=("Tables.Example.org", "127.0.0.1", "10.1.0.0/16", "[::1]"))
    loop = ipaddress.ip_address("127.0.0.1")
    assert policy.allows("tables.example.org.", ipaddress.ip_address("192.168.0.9"))
    assert policy.allows("localhost", loop)  # the address is listed
    assert not policy.allows("localhost", ipaddress.ip_address("127.0.0.2"))
    assert policy.allows("x", ipaddress.ip_address("10.1.200.3"))
    assert not policy.allows("x", ipaddress.ip_address("10.2.0.1"))
    assert policy.allows("x", ipaddress.ip_address("::1"))
    assert policy.allows("public.example.org", ipaddress.ip_address("8.8.8.8"))
    assert not FetchPolicy().allows("localhost", loop)
