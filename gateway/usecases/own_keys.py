"""docgw's own signing keys over their life: ``docgw keys rotate`` makes a new key and a CSR
(:func:`gateway.keystore.rotate`, no database needed); ``docgw keys install`` takes the issued
certificate, checks it as any uploaded certificate (:mod:`gateway.usecases.certificates`),
registers it for the local unit — the newest certificate is current at once, the old one keeps
verifying for ``[certificates] overlap_days`` (:mod:`gateway.store.current_certificate`) — and
only then puts the new pair in place, the old pair kept as the unit's previous one."""

from __future__ import annotations

from pathlib import Path

from envelopes.errors import GatewayError
from gateway import keystore
from gateway.usecases import registry
from gateway.usecases.errors import NotFound


async def install_certificate(
    gateway: registry.Registry, unit_code: str, cert_pem: bytes, *, actor: str
) -> Path:
    """Install the CA's certificate for the key ``rotate`` made; returns its path. The running
    ``docgw serve`` signs with the new key after its restart."""
    if unit_code not in gateway.settings.gateway.local_units:
        raise GatewayError(f"{unit_code} is not one of gateway.local_units", element="unit")
    directory = gateway.settings.resolve(gateway.settings.keys.dir)
    keystore.check_issued_for_pending(directory, unit_code, cert_pem)
    try:
        unit = (await registry.get_unit(gateway, unit_code)).unit
    except NotFound:
        raise GatewayError(
            f"local unit {unit_code} is not in the registry", element="unit"
        ) from None
    await registry.register_unit(
        gateway, unit, certificate_pem=cert_pem.decode(), actor=actor, given=()
    )
    return keystore.install(directory, unit_code, cert_pem)
