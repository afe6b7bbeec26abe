"""Accounts: passwords, tokens, API keys, customer binding and tenancy per role."""

from __future__ import annotations

import pytest

from workflow import Invalid, NotFound, hash_password, verify_password


def test_password_hash_and_tokens(store, clock):
    h = hash_password("s3cret-pass", n=2**10, r=8, p=1)
    assert h.startswith("scrypt$1024$8$1$") and verify_password("s3cret-pass", h)
    assert not verify_password("s3cret-pasS", h) and not verify_password("x", "md5$abc")
    assert store.authenticate("eng1", "eng-pass-1")["role"] == "engineer"
    assert store.authenticate("eng1", "wrong") is None and store.authenticate("nobody", "x") is None
    token, exp = store.issue_token("eng1", ttl_s=60)
    assert store.user_for_token(token)["id"] == "eng1"
    clock.advance(61)
    assert store.user_for_token(token) is None               # expired
    token2, _ = store.issue_token("eng1", ttl_s=60)
    store.revoke_token(token2)
    assert store.user_for_token(token2) is None
    key, info = store.create_api_key("eng1", "analytics job", ttl_s=3600)
    assert store.user_for_api_key(key)["id"] == "eng1"
    assert store.user_for_api_key(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    store.revoke_api_key(info["key_id"])
    assert store.user_for_api_key(key) is None
    store.update_user("eng1", active=False)
    assert store.authenticate("eng1", "eng-pass-1") is None


def test_customer_user_needs_customer(store):
    with pytest.raises(Invalid, match="customer_id"):
        store.create_user("c2", "customer")
    with pytest.raises(NotFound, match="nope"):
        store.create_user("c2", "customer", customer_id="nope")
    with pytest.raises(Invalid, match="role"):
        store.create_user("c2", "root")


def test_allowed_sites_per_role(store):
    assert store.allowed_sites(store.user("eng1")) == (None, None)
    assert store.allowed_sites(store.user("acme.user")) == (frozenset({"acme"}),
                                                            frozenset({"acme-plant1", "acme-office"}))
    assert store.allowed_sites(store.user("zhang.min"))[1] == frozenset({"huadong-coldstore"})
