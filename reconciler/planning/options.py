"""What a plan may do beyond diffing (`PlanOptions`)."""

from __future__ import annotations

from dataclasses import dataclass

# imgix's documented limit of source updates per hour: what adoption is costed at.
DEFAULT_UPDATES_PER_HOUR = 60


@dataclass(frozen=True)
class PlanOptions:
    """What a plan may do beyond diffing: the fingerprint key, re-sending, targeting."""

    fingerprint_key: bytes
    resend_secrets: bool = False
    targets: frozenset[str] = frozenset()
    # The API the plan is for: recorded in the plan and covered by its digest.
    api_url: str | None = None
    # Plan writes to sources whose marker names another owner (they are refused otherwise).
    take_over: bool = False
    # Adopt managed sources that carry no marker: send their secrets and write the marker.
    adopt: bool = False
    # Hourly write budgets the plan's cost (and adoption's) is stated at (None: unlimited).
    creates_per_hour: int | None = 60
    updates_per_hour: int | None = DEFAULT_UPDATES_PER_HOUR

    def __post_init__(self) -> None:
        for name in ("creates_per_hour", "updates_per_hour"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 (got {value})")
