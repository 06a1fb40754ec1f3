"""The key-pair login's private key, read and checked the way dbt-snowflake reads it.

Imports cryptography only when a key is read.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

from floe.enginekit import (
    ComputeConfig,
    PluginExecutionError,
    ProfileTarget,
    SecretReference,
    first_line,
    secret_value,
)
from floe.engines.snowflake.settings import ENGINE, PIP_INSTALL, key_path

_Fail = Callable[[str, str], PluginExecutionError]


def private_key_der(compute: ComputeConfig, target: ProfileTarget, operation: str) -> bytes:
    """The key-pair private key as unencrypted PKCS#8 DER, loaded the way dbt-snowflake loads it.

    :raises PluginExecutionError: the file is missing, the key is not a key, or the passphrase
        is missing, superfluous or wrong. Messages never hold the key or the passphrase.
    """
    config = compute.config

    def fail(message: str, fix: str) -> PluginExecutionError:
        return PluginExecutionError(ENGINE, operation, message, fix, compute=compute.name)

    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
    except ImportError:
        raise fail("the cryptography package is not installed", PIP_INSTALL) from None
    passphrase_ref = config.get("private_key_passphrase")
    passphrase = (
        secret_value(ENGINE, passphrase_ref, compute, operation).encode()
        if isinstance(passphrase_ref, SecretReference)
        else None
    )
    data, is_pem, where = _key_bytes(compute, target, operation, fail)
    key = _load_key(data, is_pem, passphrase, where, fail)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise fail(
            f"{where} is a {type(key).__name__.removeprefix('_')}, not an RSA key",
            "Snowflake key-pair logins need an RSA key (2048 bits or more): "
            "openssl genrsa 2048 | openssl pkcs8 -topk8 -v2 aes256 -out rsa_key.p8",
        )
    return key.private_bytes(
        encoding=serialization.Encoding.DER,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )


def _key_bytes(
    compute: ComputeConfig, target: ProfileTarget, operation: str, fail: _Fail
) -> tuple[bytes, bool, str]:
    """The key's bytes, whether they are PEM (else DER), and how messages name the key."""
    config = compute.config
    if config.get("private_key_path") is not None:
        path = key_path(compute, target)
        where = f"the private key file {path}"
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise fail(
                f"cannot read {where}: {exc.strerror or type(exc).__name__}",
                "correct private_key_path, or make the file readable by the user floe runs as",
            ) from None
        is_pem = True
    else:
        ref = config["private_key"]
        where = f"the private key in {ref.name}"
        text = secret_value(ENGINE, ref, compute, operation).strip()
        is_pem = text.startswith("-")
        try:
            data = text.encode() if is_pem else base64.b64decode(text, validate=True)
        except ValueError:
            raise fail(
                f"{where} is neither PEM nor base64-encoded DER",
                f"put the PEM text (-----BEGIN PRIVATE KEY-----…) or base64 DER into {ref.name}",
            ) from None
    return data, is_pem, where


def _load_key(data: bytes, is_pem: bool, passphrase: bytes | None, where: str, fail: _Fail) -> Any:
    """The private key object, or the reason it cannot be read (never the key or the passphrase)."""
    from cryptography.hazmat.primitives import serialization

    load = serialization.load_pem_private_key if is_pem else serialization.load_der_private_key
    try:
        key = load(data, password=passphrase)
    except TypeError as exc:  # a passphrase is missing, or given for an unencrypted key
        if "not encrypted" in str(exc):
            raise fail(
                f"{where} is not encrypted but private_key_passphrase is set",
                "remove private_key_passphrase",
            ) from None
        raise fail(
            f"{where} is encrypted and no passphrase is given",
            "set private_key_passphrase: {secret_ref: NAME} to the key's passphrase",
        ) from None
    except ValueError as exc:
        lowered = str(exc).lower()
        if passphrase is not None and any(
            t in lowered for t in ("incorrect password", "could not decrypt", "bad decrypt")
        ):
            raise fail(
                f"{where} could not be decrypted with private_key_passphrase",
                "check the value of the passphrase secret",
            ) from None
        raise fail(
            f"{where} is not a private key that can be read ({first_line(str(exc))})",
            "use the PKCS#8 PEM key registered with ALTER USER … SET RSA_PUBLIC_KEY "
            "(openssl pkcs8 -topk8 -in rsa_key.p8 converts older formats)",
        ) from None
    except Exception as exc:  # noqa: BLE001 - cryptography raises its own classes for odd keys
        raise fail(
            f"{where} could not be loaded ({type(exc).__name__})",
            "re-create the key as PKCS#8 PEM: openssl pkcs8 -topk8 -v2 aes256 -in old.pem -out new.p8",
        ) from None
    return key
