"""Registry: customers, sites and devices (seeded from the fleet file, editable here)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import ScopeDep, StoreDep, check_filters
from api.models import (
    CustomerCreate,
    CustomerOut,
    CustomerPatch,
    DeviceCreate,
    DeviceOut,
    DevicePatch,
    SiteCreate,
    SiteOut,
    SitePatch,
)
from workflow import NotFound

router = APIRouter(tags=["registry"])

_STAFF_DEVICE_FIELDS = ("profile", "host", "port", "unit_id", "gateway")


def _device_out(d: dict, staff: bool) -> DeviceOut:
    out = DeviceOut(id=d["id"], site_id=d["site_id"], customer_id=d["customer_id"], kind=d["kind"],
                    transport=d["transport"], name=d["name"], rated_power_kw=d["rated_power_kw"],
                    poll_interval_s=d["poll_interval_s"], supplier=d.get("supplier") or "",
                    model=d.get("model") or "", installed=d.get("installed"),
                    warranty_until=d.get("warranty_until"))
    if staff:
        for k in _STAFF_DEVICE_FIELDS:
            setattr(out, k, d[k])
    return out


def _site_out(s: dict) -> SiteOut:
    return SiteOut(**{k: s[k] for k in SiteOut.model_fields})


def _customer_out(c: dict) -> CustomerOut:
    return CustomerOut(**{k: c[k] for k in CustomerOut.model_fields})


def visible_device(store, scope, device_id: str) -> dict:
    """The device if it exists and is in the principal's scope; NotFound (404) otherwise."""
    d = store.device(device_id)
    if not scope.sees_site(d["site_id"]):
        raise NotFound(f"device {device_id!r} does not exist")
    return d


def visible_site(store, scope, site_id: str) -> dict:
    scope.check_site(site_id)
    return store.site(site_id)


@router.get("/customers", response_model=list[CustomerOut])
def list_customers(scope: ScopeDep, store: StoreDep) -> list[CustomerOut]:
    """Customers visible to the caller."""
    return [_customer_out(c) for c in store.customers(scope.customer_ids)]


@router.get("/customers/{customer_id}", response_model=CustomerOut)
def get_customer(customer_id: str, scope: ScopeDep, store: StoreDep) -> CustomerOut:
    """One customer."""
    scope.check_customer(customer_id)
    return _customer_out(store.customer(customer_id))


@router.post("/customers", response_model=CustomerOut, status_code=201)
def create_customer(body: CustomerCreate, scope: ScopeDep, store: StoreDep) -> CustomerOut:
    """Create a customer (admin only)."""
    scope.require_role("admin")
    return _customer_out(store.create_customer(body.id, body.name, body.manager, body.email))


@router.patch("/customers/{customer_id}", response_model=CustomerOut)
def update_customer(customer_id: str, body: CustomerPatch, scope: ScopeDep, store: StoreDep) -> CustomerOut:
    """Change a customer (admin only), e.g. its customer manager."""
    scope.check_customer(customer_id)
    scope.require_role("admin")
    return _customer_out(store.update_customer(customer_id, **body.model_dump(exclude_unset=True)))


@router.get("/sites", response_model=list[SiteOut])
def list_sites(scope: ScopeDep, store: StoreDep,
               customer_id: Annotated[str | None, Query(max_length=64)] = None) -> list[SiteOut]:
    """Sites visible to the caller, optionally of one customer."""
    if customer_id is not None:
        scope.check_customer(customer_id)
        store.customer(customer_id)
    return [_site_out(s) for s in store.sites(scope.site_ids, customer_id=customer_id)]


@router.get("/sites/{site_id}", response_model=SiteOut)
def get_site(site_id: str, scope: ScopeDep, store: StoreDep) -> SiteOut:
    """One site."""
    return _site_out(visible_site(store, scope, site_id))


@router.post("/sites", response_model=SiteOut, status_code=201)
def create_site(body: SiteCreate, scope: ScopeDep, store: StoreDep) -> SiteOut:
    """Create a site (admin only)."""
    scope.require_role("admin")
    values = body.model_dump(exclude={"id", "customer_id", "name"})
    return _site_out(store.create_site(body.id, body.customer_id, body.name, **values))


@router.patch("/sites/{site_id}", response_model=SiteOut)
def update_site(site_id: str, body: SitePatch, scope: ScopeDep, store: StoreDep) -> SiteOut:
    """Change a site (admin or engineer)."""
    visible_site(store, scope, site_id)
    scope.require_role("admin", "engineer")
    return _site_out(store.update_site(site_id, **body.model_dump(exclude_unset=True)))


@router.get("/devices", response_model=list[DeviceOut])
def list_devices(scope: ScopeDep, store: StoreDep,
                 site_id: Annotated[str | None, Query(max_length=64)] = None,
                 kind: Annotated[str | None, Query(max_length=32)] = None) -> list[DeviceOut]:
    """Devices visible to the caller, optionally of one site or kind."""
    check_filters(scope, store, site_id)
    return [_device_out(d, scope.is_staff) for d in store.devices(scope.site_ids, site_id=site_id, kind=kind)]


@router.get("/devices/{device_id}", response_model=DeviceOut)
def get_device(device_id: str, scope: ScopeDep, store: StoreDep) -> DeviceOut:
    """One device (network address and profile for staff only)."""
    return _device_out(visible_device(store, scope, device_id), scope.is_staff)


@router.post("/devices", response_model=DeviceOut, status_code=201)
def create_device(body: DeviceCreate, scope: ScopeDep, store: StoreDep) -> DeviceOut:
    """Register a device (admin or engineer)."""
    scope.check_site(body.site_id)
    scope.require_role("admin", "engineer")
    values = body.model_dump(exclude={"id", "site_id", "kind", "transport"})
    return _device_out(store.create_device(body.id, body.site_id, body.kind, body.transport, **values), True)


@router.patch("/devices/{device_id}", response_model=DeviceOut)
def update_device(device_id: str, body: DevicePatch, scope: ScopeDep, store: StoreDep) -> DeviceOut:
    """Change a device (admin or engineer)."""
    visible_device(store, scope, device_id)
    scope.require_role("admin", "engineer")
    return _device_out(store.update_device(device_id, **body.model_dump(exclude_unset=True)), True)
