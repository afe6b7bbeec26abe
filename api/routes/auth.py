"""Login, logout, the current user, user administration and API keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials

from api.deps import ScopeDep, SettingsDep, StoreDep, UserDep, bearer
from api.models import (
    ApiKeyCreate,
    ApiKeyOut,
    TokenOut,
    TokenRequest,
    UserCreate,
    UserOut,
    UserPatch,
    ts,
)

router = APIRouter(tags=["access"])


def _user_out(u: dict) -> UserOut:
    return UserOut(id=u["id"], name=u["name"], role=u["role"], customer_id=u["customer_id"],
                   engineer_group=u["engineer_group"], email=u["email"], active=bool(u["active"]))


@router.post("/auth/token", response_model=TokenOut)
def login(body: TokenRequest, request: Request, store: StoreDep, settings: SettingsDep) -> TokenOut:
    """Exchange a user name and password for a bearer token that expires.

    Failed logins lock a user name for a minute after ``login_max_fails`` of them, and a client
    address after four times as many (any user names: a spray of names is stopped too); both
    answer 429 with ``Retry-After``.
    """
    limiter = request.app.state.login_limiter
    by_address = request.app.state.login_address_limiter
    address = request.client.host if request.client else "-"
    if by_address.blocked(address):
        raise HTTPException(429, "too many failed logins from this address; try again in a minute",
                            headers={"Retry-After": "60"})
    if limiter.blocked(body.username):
        raise HTTPException(429, "too many failed logins for this user; try again in a minute",
                            headers={"Retry-After": "60"})
    user = store.authenticate(body.username, body.password)
    if user is None:
        limiter.failed(body.username)
        by_address.failed(address)
        raise HTTPException(401, "wrong user name or password", headers={"WWW-Authenticate": "Bearer"})
    limiter.succeeded(body.username)
    token, exp = store.issue_token(user["id"], settings.token_ttl_s)
    return TokenOut(access_token=token, expires_at=ts(exp), role=user["role"])


@router.post("/auth/logout", status_code=204)
def logout(user: UserDep, store: StoreDep,
           cred: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> None:
    """Revoke the bearer token used for this request."""
    if cred is not None:
        store.revoke_token(cred.credentials)


@router.get("/auth/me", response_model=UserOut)
def me(user: UserDep) -> UserOut:
    """The authenticated user."""
    return _user_out(user)


@router.get("/users", response_model=list[UserOut])
def list_users(scope: ScopeDep, store: StoreDep) -> list[UserOut]:
    """All users (admin only)."""
    scope.require_role("admin")
    return [_user_out(u) for u in store.users()]


@router.post("/users", response_model=UserOut, status_code=201)
def create_user(body: UserCreate, scope: ScopeDep, store: StoreDep) -> UserOut:
    """Create a user (admin only); customer users are bound to one customer."""
    scope.require_role("admin")
    return _user_out(store.create_user(body.id, body.role, password=body.password, name=body.name,
                                       customer_id=body.customer_id, engineer_group=body.engineer_group,
                                       email=body.email))


@router.patch("/users/{user_id}", response_model=UserOut)
def update_user(user_id: str, body: UserPatch, scope: ScopeDep, store: StoreDep) -> UserOut:
    """Change a user (admin only); deactivating or a new password revokes its tokens."""
    scope.require_role("admin")
    return _user_out(store.update_user(user_id, **body.model_dump(exclude_unset=True)))


@router.post("/api-keys", response_model=ApiKeyOut, status_code=201)
def create_api_key(body: ApiKeyCreate, scope: ScopeDep, store: StoreDep) -> ApiKeyOut:
    """Create an API key for a service account (admin only); the secret is shown once."""
    scope.require_role("admin")
    key, info = store.create_api_key(body.user_id, body.name, body.ttl_days * 86400 if body.ttl_days else None)
    return ApiKeyOut(key=key, key_id=info["key_id"], user_id=info["user_id"], name=info["name"],
                     expires_at=ts(info["expires_ns"]))


@router.delete("/api-keys/{key_id}", status_code=204)
def revoke_api_key(key_id: str, scope: ScopeDep, store: StoreDep) -> None:
    """Revoke an API key (admin only)."""
    scope.require_role("admin")
    store.revoke_api_key(key_id)
