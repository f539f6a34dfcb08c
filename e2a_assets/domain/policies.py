"""Tenant policies: SLA limits, tariffs, rate card versions and identity of each 3PL client.

Policies are typed and validated (pydantic); `load_registry` reads the YAML files of `policies/`
and turns any problem into a one-line `PolicyError` naming the file and the field. Every SLA and
tariff value comes from those files (DOMAIN §7): the models have no defaults of their own, the
loader merges the default files, the environment overrides and each tenant's own values.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
import yaml
from babel import Locale, UnknownLocaleError
from babel.numbers import list_currencies
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from e2a_assets.domain.gl_accounts import GlAccounts

FLAGS = (
    "rush",
    "oversized",
    "hazmat",
    "fragile",
    "gift_wrap",
    "photo",
    "quality_check",
    "custom_packaging",
)
SERVICE_FLAGS = ("gift_wrap", "photo", "quality_check", "custom_packaging")
MULTIPLIER_FLAGS = ("rush", "oversized", "hazmat", "fragile")
# The policy files shipped with e2a (the defaults of DOMAIN §3 and §5).
SHIPPED_POLICIES_DIR = Path(__file__).resolve().parents[2] / "policies"
DEFAULT_TENANT_KEY = "default"  # the name the registry's defaults carry as a TenantPolicy


class PolicyError(ValueError):
    """A policy file is missing, unreadable or invalid (message is one line)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlaPolicy(_Strict):
    """SLA limits (DOMAIN §3); values from policies/default_sla.yaml and the tenant's `sla:`."""

    pick_minutes: float = Field(gt=0)
    pack_minutes: float = Field(gt=0)
    ship_minutes: float = Field(gt=0)
    missing_scan_factor: float = Field(gt=0)
    delivery_hours: float = Field(gt=0)
    response_hours: float = Field(gt=0)
    stalled_hours: float = Field(gt=0)


class VolumeDiscount(_Strict):
    min_orders: int = Field(ge=1)
    rate: float = Field(ge=0, lt=1)


class Tariff(_Strict):
    """Prices and billing terms (DOMAIN §5); values from policies/default_tariffs.yaml and the
    tenant's `tariff:`."""

    currency: str
    pick_cents: int = Field(ge=0)
    pack_cents: int = Field(ge=0)
    label_cents: int = Field(ge=0)
    kitting_cents: int = Field(ge=0)
    storage_day_cents: int = Field(ge=0)
    long_term_storage_after_days: int = Field(ge=0)
    long_term_storage_factor: float = Field(ge=0)
    services_cents: dict[str, int]
    return_processing_cents: int = Field(ge=0)
    return_restock_cents: int = Field(ge=0)
    return_label_cents: int = Field(ge=0)
    minimum_order_cents: int = Field(ge=0)
    multipliers: dict[str, float]
    payment_terms_days: int = Field(ge=0)
    volume_discounts: tuple[VolumeDiscount, ...]
    minimum_monthly_fee_cents: int = Field(ge=0)
    adjustment_auto_limit_cents: int = Field(ge=0)
    adjustment_review_limit_cents: int = Field(ge=0)

    @field_validator("currency")
    @classmethod
    def _iso_4217(cls, value: str) -> str:
        # Babel's list of ISO 4217 codes: a typo ("USS") would otherwise print on every document.
        if value not in _iso_currencies():
            raise ValueError(f"unknown currency {value!r} (expected an ISO 4217 code such as USD, EUR, GBP)")
        return value

    @field_validator("services_cents")
    @classmethod
    def _known_services(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - set(SERVICE_FLAGS))
        if unknown:
            raise ValueError(f"unknown service {unknown[0]!r} (known: {', '.join(SERVICE_FLAGS)})")
        if any(v < 0 for v in value.values()):
            raise ValueError("service prices must be >= 0")
        return {k: value.get(k, 0) for k in SERVICE_FLAGS}

    @field_validator("multipliers")
    @classmethod
    def _known_multipliers(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(MULTIPLIER_FLAGS))
        if unknown:
            raise ValueError(f"unknown multiplier {unknown[0]!r} (known: {', '.join(MULTIPLIER_FLAGS)})")
        if any(v <= 0 for v in value.values()):
            raise ValueError("multipliers must be > 0")
        # Keep the DOMAIN order (rush, oversized, hazmat, fragile) whatever the file's order.
        return {k: value.get(k, 1.0) for k in MULTIPLIER_FLAGS}


@functools.cache
def _iso_currencies() -> frozenset[str]:
    return frozenset(list_currencies())


DEFAULT_LOCALE = "en_US"


# The tariff keys a rate card version may set (DOMAIN §8.1): the per-order prices of DOMAIN §5.
# Currency, payment terms, volume discounts, the minimum monthly fee and the adjustment limits are
# account terms of the tenant (its `tariff:`), the same for every version.
RATE_CARD_KEYS = (
    "pick_cents", "pack_cents", "label_cents", "kitting_cents", "storage_day_cents",
    "long_term_storage_after_days", "long_term_storage_factor", "services_cents",
    "return_processing_cents", "return_restock_cents", "return_label_cents", "minimum_order_cents",
    "multipliers",
)  # fmt: skip
FIRST_RATE_CARD_VERSION = 1
# Billing modes (DOMAIN §8.3).
PER_ORDER, MONTHLY = "per_order", "monthly"
BILLING_MODES = (PER_ORDER, MONTHLY)
DEFAULT_GRACE_DAYS = 3


class RateCardVersion(_Strict):
    """One version of a tenant's rate card (DOMAIN §8.1): in force from `effective_from` (version 1:
    from the first day, `None`) until the next version's date. `tariff` is the whole tariff it
    prices with (the tenant's tariff with `changes` over it); `changes` are the values it sets."""

    version: int = Field(ge=FIRST_RATE_CARD_VERSION)
    effective_from: dt.date | None = None
    changes: dict[str, Any] = Field(default_factory=dict)
    tariff: Tariff

    def prices(self) -> dict[str, Any]:
        """Every rate card value this version prices with (`RATE_CARD_KEYS`), defaults included."""
        return {key: getattr(self.tariff, key) for key in RATE_CARD_KEYS}

    def definition(self) -> str:
        """Canonical JSON of what the version is (its date and every price): what an issued
        invoice's version is compared by."""
        start = self.effective_from.isoformat() if self.effective_from else None
        return json.dumps({"effective_from": start, "prices": self.prices()}, sort_keys=True, separators=(",", ":"))

    def fingerprint(self) -> str:
        return hashlib.sha256(self.definition().encode()).hexdigest()


class TenantPolicy(_Strict):
    tenant: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    display_name: str = ""
    shop_domain: str | None = None
    timezone: str = "UTC"
    webhook_secret_env: str | None = None
    webhook_secret_file: str | None = None
    webhook_secret_dev: str | None = None
    # Secret rotation (docs/webhooks.md "Rotating a secret"): the next secret verifies beside the
    # current one; the current one may stop verifying at `webhook_secret_expires_at`.
    webhook_secret_next_env: str | None = None
    webhook_secret_next_file: str | None = None
    webhook_secret_expires_at: dt.datetime | None = None
    # wms/carrier deliveries must carry a timestamped (Standard Webhooks) signature: the e2a
    # body-only signature, replayable at any time, is refused.
    webhook_require_timestamp: bool = False
    # Resolved when the registry is loaded (from the environment variable, else the file, else the
    # development secret when allowed); never shown in reprs.
    resolved_secret: SecretStr | None = Field(default=None, repr=False)
    resolved_next_secret: SecretStr | None = Field(default=None, repr=False)
    sla: SlaPolicy
    tariff: Tariff
    # Versions 1..n of the rate card (DOMAIN §8.1); version 1 is `tariff`. Empty when built by hand:
    # then `rate_card_versions()` is version 1 alone.
    rate_cards: tuple[RateCardVersion, ...] = ()
    # Billing mode (DOMAIN §8.3, docs/rules/billing-modes.md): one invoice per billable order, or
    # one invoice per month issued `grace_days` after the month ends.
    billing_mode: Literal["per_order", "monthly"] = PER_ORDER
    grace_days: int = Field(default=DEFAULT_GRACE_DAYS, ge=0, strict=True)
    # Who the documents are addressed to (docs/billing.md "Documents"): the client's legal name
    # (default: display_name) and postal address, one line per entry.
    billing_name: str = ""
    billing_address: tuple[str, ...] = ()
    # The language and number format of the tenant's documents (Babel locale, e.g. en_US, de_DE).
    locale: str = DEFAULT_LOCALE
    # Income accounts of the accounting exports (domain/gl_accounts.py): the defaults file with the
    # tenant's `gl_accounts:` over it. None when built by hand: then `gl()` is the shipped defaults.
    gl_accounts: GlAccounts | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_secret(cls, data: Any) -> Any:
        # Built directly (not by load_registry): the development secret signs.
        if isinstance(data, dict) and "resolved_secret" not in data:
            data = {**data, "resolved_secret": data.get("webhook_secret_dev")}
        return data

    @field_validator("webhook_secret_expires_at")
    @classmethod
    def _aware_expiry(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a UTC offset, e.g. 2026-12-15T00:00:00Z")
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("locale")
    @classmethod
    def _known_locale(cls, value: str) -> str:
        try:
            Locale.parse(value)
        except (UnknownLocaleError, ValueError, TypeError):
            raise ValueError(f"unknown locale {value!r} (expected a locale such as en_US, en_GB, de_DE)") from None
        return value

    @property
    def currency(self) -> str:
        return self.tariff.currency

    @property
    def bill_to_name(self) -> str:
        """The name documents are addressed to: the billing name, else the display name, else the tenant."""
        return self.billing_name or self.display_name or self.tenant

    def rate_card_versions(self) -> tuple[RateCardVersion, ...]:
        """The tenant's rate card versions in order; version 1 alone (its tariff, in force from the
        first day) when it has none."""
        return self.rate_cards or (RateCardVersion(version=FIRST_RATE_CARD_VERSION, tariff=self.tariff),)

    def gl(self) -> GlAccounts:
        """The tenant's income accounts (GL codes) for the accounting exports."""
        return self.gl_accounts if self.gl_accounts is not None else shipped_gl_accounts()

    def webhook_secret(self) -> str | None:
        """The tenant's signing secret as resolved at load time (None: the tenant cannot sign)."""
        return self.resolved_secret.get_secret_value() if self.resolved_secret else None

    def webhook_secrets(self, now: dt.datetime) -> tuple[str, ...]:
        """The secrets that verify a delivery at `now`: the current one until its expiry, and the
        next one while a rotation is under way (both, or either, may be absent)."""
        out = []
        current = self.webhook_secret()
        if current and (self.webhook_secret_expires_at is None or now < self.webhook_secret_expires_at):
            out.append(current)
        if self.resolved_next_secret is not None:
            nxt = self.resolved_next_secret.get_secret_value()
            if nxt and nxt not in out:
                out.append(nxt)
        return tuple(out)

    @property
    def uses_dev_secret(self) -> bool:
        return self.resolved_secret is not None and self.webhook_secret() == self.webhook_secret_dev


@dataclass(frozen=True)
class TenantRegistry:
    """All tenants e2a serves, by name and by Shopify shop domain, and the default policy they
    start from (`defaults`: the policy files plus the environment overrides, as loaded)."""

    policies: tuple[TenantPolicy, ...]
    defaults: TenantPolicy | None = None
    # The files it was read from (policy files, tenants file, secret files): a receiver reloads
    # the registry when one of them changes.
    sources: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        names = [p.tenant for p in self.policies]
        if len(set(names)) != len(names):
            raise PolicyError("tenant registry: duplicate tenant name")

    @property
    def tenants(self) -> list[str]:
        return [p.tenant for p in self.policies]

    @functools.cached_property
    def digest(self) -> str:
        """A short fingerprint of what the registry bills by (every tenant's policy, rate cards and
        the defaults, secrets left out): two processes with different tenants.yaml or overrides
        have different digests, so one that would bill differently is reported, not trusted."""
        # How deliveries are authenticated (secrets, their rotation) does not change a bill: a
        # rotated or differently resolved secret must not set processes apart.
        intake = {f for f in TenantPolicy.model_fields if f.startswith(("webhook_", "resolved_"))}
        content = [p.model_dump(mode="json", exclude=intake) for p in (*self.policies, *filter(None, [self.defaults]))]
        return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def default_policy(self) -> TenantPolicy:
        """The policy of a tenant the registry does not list: its loaded defaults (the shipped
        files' when the registry was assembled by hand)."""
        return self.defaults if self.defaults is not None else shipped_defaults()

    def get(self, tenant: str) -> TenantPolicy | None:
        return next((p for p in self.policies if p.tenant == tenant), None)

    def __getitem__(self, tenant: str) -> TenantPolicy:
        policy = self.get(tenant)
        if policy is None:
            raise KeyError(f"unknown tenant {tenant!r}")
        return policy

    def monthly_tenants(self) -> list[str]:
        """The tenants billed in `monthly` mode (DOMAIN §8.3); every other tenant is per order."""
        return [p.tenant for p in self.policies if p.billing_mode == MONTHLY]

    def grace_days(self, tenant: str) -> int:
        """Days after a month ends before a monthly tenant's invoice for it is issued."""
        return (self.get(tenant) or self.default_policy()).grace_days

    def by_shop_domain(self, domain: str) -> TenantPolicy | None:
        domain = (domain or "").strip().lower()
        return next((p for p in self.policies if p.shop_domain and p.shop_domain.lower() == domain), None)

    def policy_frame(self) -> pd.DataFrame:
        """One row per tenant with every numeric policy value as a column, for vectorised joins
        (the tariff columns are rate card version 1's)."""
        rows = []
        for p in self.policies:
            row: dict[str, Any] = {"tenant": p.tenant, "timezone": p.timezone, "currency": p.tariff.currency}
            row.update(p.sla.model_dump())
            row.update(_tariff_columns(p.tariff))
            rows.append(row)
        return pd.DataFrame(rows)

    def rate_card_frame(self) -> pd.DataFrame:
        """One row per (tenant, rate card version): `rate_card_version`, `effective_from` (NaT for
        version 1: from the first day) and the version's `tariff_*` columns, as in `policy_frame`."""
        rows = [
            {"tenant": p.tenant, "rate_card_version": v.version, "effective_from": v.effective_from,
             "currency": v.tariff.currency, **_tariff_columns(v.tariff)}
            for p in self.policies for v in p.rate_card_versions()
        ]  # fmt: skip
        frame = pd.DataFrame(rows, columns=None if rows else ["tenant", "rate_card_version", "effective_from"])
        frame["effective_from"] = pd.to_datetime(pd.Series(frame["effective_from"], dtype=object))
        return frame


def _tariff_columns(t: Tariff) -> dict[str, Any]:
    """A tariff as flat `tariff_*` columns (services and multipliers one column each)."""
    row: dict[str, Any] = {}
    for key, value in t.model_dump().items():
        if key in ("currency", "services_cents", "multipliers", "volume_discounts"):
            continue
        row[f"tariff_{key}"] = value
    for name, cents in t.services_cents.items():
        row[f"tariff_service_{name}_cents"] = cents
    for name, factor in t.multipliers.items():
        row[f"tariff_multiplier_{name}"] = factor
    return row


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise PolicyError(f"{path}:{where} invalid YAML ({getattr(exc, 'problem', exc)})") from None


def _first_error(path: Path, prefix: str, exc: ValidationError) -> PolicyError:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
    return PolicyError(f"{path}: field '{field}': {err['msg']}")


def _secret_path(spec: dict[str, Any], key: str, base: Path) -> Path | None:
    """The secret file named by `key`, relative to the tenants file's folder unless absolute."""
    raw = spec.get(key)
    if not raw:
        return None
    path = Path(str(raw)).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def _read_secret(path: Path, where: str) -> str:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{where}: cannot read secret file {path} ({getattr(exc, 'strerror', None) or exc})") from None
    if not value:
        raise PolicyError(f"{where}: secret file {path} is empty")
    return value


def _resolve_secret(spec: dict[str, Any], environ: Mapping[str, str], allow_dev_secrets: bool, *,
                    base: Path = Path("."), where: str = "", kind: str = "webhook_secret") -> str | None:
    """A secret from the environment variable `<kind>_env`, else the file `<kind>_file`, else (the
    current secret only, when allowed) the development secret `webhook_secret_dev`."""
    name = spec.get(f"{kind}_env")
    if name and environ.get(name):
        return environ[name]
    path = _secret_path(spec, f"{kind}_file", base)
    if path is not None:
        return _read_secret(path, f"{where}.{kind}_file'")
    if kind != "webhook_secret":
        return None
    return spec.get("webhook_secret_dev") if allow_dev_secrets else None


def _default_values(
    policies_dir: Path, overrides: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(SLA, tariff) default values: the policy files with the environment overrides applied,
    each validated as a whole (a missing or bad value names its file and field)."""
    sla_path = policies_dir / "default_sla.yaml"
    tariff_path = policies_dir / "default_tariffs.yaml"
    overrides = dict(overrides or {})
    sla_defaults = _read_yaml(sla_path)
    tariff_defaults = _read_yaml(tariff_path)
    for path, doc in ((sla_path, sla_defaults), (tariff_path, tariff_defaults)):
        if not isinstance(doc, dict):
            raise PolicyError(f"{path}: expected a mapping at the top level")
    for key in ("response_hours", "delivery_hours"):
        if overrides.get(key) is not None:
            sla_defaults[key] = overrides[key]
    if overrides.get("payment_terms_days") is not None:
        tariff_defaults["payment_terms_days"] = overrides["payment_terms_days"]
    try:
        SlaPolicy(**sla_defaults)
    except ValidationError as exc:
        raise _first_error(sla_path, "", exc) from None
    try:
        Tariff(**tariff_defaults)
    except ValidationError as exc:
        raise _first_error(tariff_path, "", exc) from None
    return sla_defaults, tariff_defaults


def _merged(defaults: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    """A tenant's values over the defaults; one service price or multiplier overridden keeps the
    defaults of the others."""
    merged = {**defaults, **own}
    for key in ("services_cents", "multipliers"):
        if isinstance(own.get(key), dict) and isinstance(defaults.get(key), dict):
            merged[key] = {**defaults[key], **own[key]}
    return merged


def default_policy(
    tenant: str = DEFAULT_TENANT_KEY,
    *,
    sla: Mapping[str, Any] | None = None,
    tariff: Mapping[str, Any] | None = None,
    policies_dir: Path = SHIPPED_POLICIES_DIR,
    **fields: Any,
) -> TenantPolicy:
    """A tenant's policy starting from the default files, with `sla`/`tariff` values and other
    fields (shop_domain, webhook_secret_dev, ...) of its own: for tests, benchmarks and tools
    that need a policy without a tenants file."""
    sla_defaults, tariff_defaults = _default_values(Path(policies_dir))
    return TenantPolicy(tenant=tenant, sla=_merged(sla_defaults, sla or {}),
                        tariff=_merged(tariff_defaults, tariff or {}), **fields)  # fmt: skip


GL_DEFAULTS_FILE = "default_gl_accounts.yaml"


def _gl_defaults(policies_dir: Path) -> tuple[Path, dict[str, Any]]:
    """The default accounts file of `policies_dir` (the shipped one when that directory has none),
    validated as a whole."""
    path = policies_dir / GL_DEFAULTS_FILE
    if not path.exists():
        path = SHIPPED_POLICIES_DIR / GL_DEFAULTS_FILE
    doc = _read_yaml(path)
    if not isinstance(doc, dict):
        raise PolicyError(f"{path}: expected a mapping at the top level")
    try:
        GlAccounts(**doc)
    except ValidationError as exc:
        raise _first_error(path, "", exc) from None
    return path, doc


def _gl_accounts(defaults: Mapping[str, Any], own: Any, path: Path, field: str) -> GlAccounts:
    """A tenant's `gl_accounts:` (any of receivable, xero_tax_type, accounts: {charge: code}) over
    the defaults; a problem is a one-line `PolicyError` naming the file and the field."""
    if own is None:
        own = {}
    if not isinstance(own, dict) or not isinstance(own.get("accounts", {}), dict):
        raise PolicyError(f"{path}: field '{field}': expected a mapping like {{accounts: {{pick: '4010'}}}}")
    merged = {**defaults, **own, "accounts": {**defaults.get("accounts", {}), **own.get("accounts", {})}}
    try:
        return GlAccounts(**merged)
    except ValidationError as exc:
        raise _first_error(path, field, exc) from None


@functools.cache
def shipped_gl_accounts() -> GlAccounts:
    """The accounts of the shipped defaults file: what a policy built by hand exports with."""
    return GlAccounts(**_gl_defaults(SHIPPED_POLICIES_DIR)[1])


@functools.cache
def shipped_defaults() -> TenantPolicy:
    """The default policy of the shipped policy files (no tenant, no environment override): what a
    rule given no policies at all applies. Read once, on first use."""
    return default_policy()


def load_registry(
    policies_dir: Path,
    tenants_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    allow_dev_secrets: bool = True,
) -> TenantRegistry:
    """Read default SLA and tariff YAML plus the tenants file into a validated registry.

    `overrides` carries environment-level settings (`SLA_RESPONSE_HOURS`, `SLA_DELIVERY_HOURS`,
    `INVOICE_PAYMENT_TERMS_DAYS`) that replace the defaults, below any tenant's own value.
    Webhook secrets come from `environ` (the variables named by `webhook_secret_env`); without
    one, a tenant's `webhook_secret_dev` is used unless `allow_dev_secrets` is False.
    """
    environ = environ or {}
    policies_dir = Path(policies_dir)
    tenants_path = Path(tenants_file) if tenants_file else policies_dir / "tenants.yaml"
    sla_defaults, tariff_defaults = _default_values(policies_dir, overrides)
    gl_path, gl_defaults = _gl_defaults(policies_dir)

    doc = _read_yaml(tenants_path)
    tenants = doc.get("tenants") if isinstance(doc, dict) else None
    if not isinstance(tenants, dict) or not tenants:
        raise PolicyError(f"{tenants_path}: field 'tenants': expected a non-empty mapping of tenant name to settings")
    policies = []
    secret_files: list[Path] = []
    for name, spec in tenants.items():
        spec = dict(spec or {})
        if not isinstance(spec.get("sla", {}), dict) or not isinstance(spec.get("tariff", {}), dict):
            raise PolicyError(f"{tenants_path}: field 'tenants.{name}': 'sla' and 'tariff' must be mappings")
        where = f"{tenants_path}: field 'tenants.{name}"
        base = tenants_path.resolve().parent
        spec["resolved_secret"] = _resolve_secret(spec, environ, allow_dev_secrets, base=base, where=where)
        spec["resolved_next_secret"] = _resolve_secret(spec, environ, allow_dev_secrets, base=base, where=where,
                                                       kind="webhook_secret_next")
        for key in ("webhook_secret_file", "webhook_secret_next_file"):
            path = _secret_path(spec, key, base)
            if path is not None:
                spec[key] = str(path)
                secret_files.append(path)
        spec["sla"] = _merged(sla_defaults, spec.get("sla", {}))
        spec["tariff"] = _merged(tariff_defaults, spec.get("tariff", {}))
        cards = spec.pop("rate_cards", None)
        spec["gl_accounts"] = _gl_accounts(gl_defaults, spec.get("gl_accounts"), tenants_path, f"tenants.{name}.gl_accounts")
        try:
            policy = TenantPolicy(tenant=str(name), **spec)
        except ValidationError as exc:
            raise _first_error(tenants_path, f"tenants.{name}", exc) from None
        except TypeError as exc:
            raise PolicyError(f"{tenants_path}: field 'tenants.{name}': {exc}") from None
        if cards is not None:
            versions = _rate_card_versions(cards, spec["tariff"], tenants_path, f"tenants.{name}.rate_cards")
            policy = policy.model_copy(update={"rate_cards": versions})
        policies.append(policy)
    defaults = TenantPolicy(tenant=DEFAULT_TENANT_KEY, sla=sla_defaults, tariff=tariff_defaults,
                            gl_accounts=GlAccounts(**gl_defaults))
    sources = (policies_dir / "default_sla.yaml", policies_dir / "default_tariffs.yaml", gl_path, tenants_path, *secret_files)
    return TenantRegistry(tuple(policies), defaults, tuple(p.resolve() for p in sources))


def _rate_card_versions(cards: Any, base: Mapping[str, Any], path: Path, field: str) -> tuple[RateCardVersion, ...]:
    """Parse a tenant's `rate_cards:` list (DOMAIN §8.1) over its tariff `base`; a problem is a
    one-line `PolicyError` naming the file and the field (`field` is `tenants.<name>.rate_cards`).

    Version 1 is the tenant's `tariff:` in force from the first day: the list may start with a bare
    `- version: 1` or leave it out. The listed versions are numbered on from there without a gap,
    each with an `effective_from` date later than the previous version's and the rate card values
    (`RATE_CARD_KEYS`) that differ from the tenant's tariff (each version states all of them).
    """
    where = f"{path}: field '{field}"
    if not isinstance(cards, list) or not all(isinstance(c, dict) for c in cards):
        raise PolicyError(f"{where}': expected a list of versions, like [{{version: 2, effective_from: 2025-08-15, pick_cents: 40}}]")
    versions = [RateCardVersion(version=FIRST_RATE_CARD_VERSION, tariff=base)]
    for n, card in enumerate(cards):
        number = card.get("version")
        if n == 0 and number == FIRST_RATE_CARD_VERSION:
            if set(card) != {"version"}:
                raise PolicyError(f"{where}[0]': version 1 is the tenant's tariff, in force from the first day: "
                                  f"give it no effective_from or prices (put them under 'tariff:')")
            continue
        expected = versions[-1].version + 1
        if isinstance(number, bool) or number != expected:
            raise PolicyError(f"{where}[{n}].version': expected {expected} (versions are numbered 1, 2, ... "
                              f"without a gap), got {number!r}")
        start = card.get("effective_from")
        if isinstance(start, str):
            try:
                start = dt.date.fromisoformat(start)
            except ValueError:
                start = None
        if not isinstance(start, dt.date) or isinstance(start, dt.datetime):
            raise PolicyError(f"{where}[{n}].effective_from': expected a date YYYY-MM-DD, got {card.get('effective_from')!r}")
        previous = versions[-1].effective_from
        if previous is not None and start <= previous:
            raise PolicyError(f"{where}[{n}].effective_from': {start} is not after version {versions[-1].version}'s "
                              f"{previous}")
        changes = {k: v for k, v in card.items() if k not in ("version", "effective_from")}
        unknown = sorted(set(changes) - set(RATE_CARD_KEYS))
        if unknown:
            raise PolicyError(f"{where}[{n}].{unknown[0]}': not a rate card value (a version sets: "
                              f"{', '.join(RATE_CARD_KEYS)})")
        try:
            tariff = Tariff(**_merged(base, changes))
        except ValidationError as exc:
            raise _first_error(path, f"{field}[{n}]", exc) from None
        versions.append(RateCardVersion(version=expected, effective_from=start, changes=changes, tariff=tariff))
    return tuple(versions)
