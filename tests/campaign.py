"""What the fault and signal campaigns share: the account a run draws, its file, the checks.

Both campaigns build a managed account and a desired state that changes it (attribute
changes, renames, disabled sources enabled, hostnames moving to a new source, rotated and
new secrets, new sources, sources left unmanaged); each says how often through its own
`Drawing` and keeps what is its own (faults, how an apply is cut off) in its file.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reconciler.emulator import RateLimits, SourceStore
from reconciler.rails import Permissions

NO_LIMITS = RateLimits(per_second=None, creates_per_hour=None, updates_per_hour=None)
# Hostname moves and rotated secrets are risky: several exceed the blast radius, which is
# not what the campaigns are about. Their plain applies have no --allow-disable, though:
# enabled sources stay enabled, and a disabled one is enabled before it changes.
LARGE = Permissions(allow_large_change=True)


@dataclass
class Source:
    """One source of a desired state, as a campaign draws it."""

    name: str
    subdomains: list[str]
    enabled: bool = True
    ttl: int = 3600
    password_env: str | None = None
    # Pins the match (set once the account exists): a hostname may then move away.
    pinned_as: str | None = None
    id: str | None = None

    def yaml(self) -> str:
        pin = f"\n    id: {self.id}" if self.id else ""
        text = f"""\
  - name: {self.name}{pin}
    enabled: {str(self.enabled).lower()}
    deployment:
      type: webfolder
      imgix_subdomains: [{", ".join(self.subdomains)}]
      webfolder_base_url: https://{self.subdomains[0]}.campaign.example/
      cache_ttl_value: {self.ttl}
"""
        if self.password_env:
            text += f"      username: imgix\n      password: {{env: {self.password_env}}}\n"
        return text


def state_yaml(sources: list[Source]) -> str:
    return "version: 1\nsources:\n" + "".join(source.yaml() for source in sources)


@dataclass(frozen=True)
class Names:
    """What a campaign calls its sources, hostnames and password variables."""

    # Run 3's first source is "{label}3 {site} 0", its hostnames "{host}3-s0-a" and "-b",
    # its password variable "{variables}PASSWORD_3_0" (a new one's "...NEW_PASSWORD_3_0").
    label: str
    site: str
    host: str
    variables: str
    renamed: str


@dataclass(frozen=True)
class Secrets:
    """How often sources have a password, and how the values are drawn."""

    # Each value is one of these prefixes (first, rotated, new) and `bits` random bits.
    prefixes: tuple[str, str, str]
    bits: int
    first: float
    rotate: float
    # None: new sources never have one (and nothing is drawn for it).
    new: float | None = None

    def value(self, rng: random.Random, kind: int) -> str:
        return f"{self.prefixes[kind]}{rng.getrandbits(self.bits):0{self.bits // 4}x}"


@dataclass(frozen=True)
class Drawing:
    """How a campaign draws its accounts: names, secrets, and how often each change comes.

    A rate of None draws nothing for that change, so the generator's sequence is the one
    the campaign had before it shared this drawing.
    """

    names: Names
    secrets: Secrets
    most_sources: int
    enabled: float
    ttl_change: float
    rename: float
    move: float
    enable: float | None = None
    most_unmanaged: int | None = None


@dataclass
class Account:
    """A drawn account: as it is first, as the file wants it, and the secrets of each."""

    initial: list[Source]
    desired: list[Source]
    # The variables the desired file reads (rotated and new secrets included)...
    environ: dict[str, str]
    # ... and those the account was made with, before any rotation.
    initial_environ: dict[str, str]

    def rotated(self, source: Source) -> bool:
        """Whether the file sends `source` a password the account does not hold yet."""
        variable = source.password_env
        return variable is not None and self.environ[variable] != self.initial_environ.get(variable)


def draw_account(rng: random.Random, number: int, drawing: Drawing) -> Account:
    """A managed account and the change to make to it, drawn as `drawing` says."""
    d, names, secrets = drawing, drawing.names, drawing.secrets
    environ: dict[str, str] = {}
    initial: list[Source] = []
    for n in range(rng.randint(3, d.most_sources)):
        source = Source(
            name=f"{names.label}{number} {names.site} {n}",
            subdomains=[f"{names.host}{number}-s{n}-a", f"{names.host}{number}-s{n}-b"],
            enabled=rng.random() < d.enabled,
            ttl=rng.choice([3600, 86400]),
        )
        if rng.random() < secrets.first:
            source.password_env = f"{names.variables}PASSWORD_{number}_{n}"
            environ[source.password_env] = secrets.value(rng, 0)
        initial.append(source)
    initial_environ = dict(environ)

    desired: list[Source] = []
    unmanaged: set[int] = set()
    if d.most_unmanaged is not None:
        unmanaged = set(rng.sample(range(len(initial)), k=rng.randint(0, d.most_unmanaged)))
    for n, was in enumerate(initial):
        if n in unmanaged:
            continue
        source = Source(was.name, list(was.subdomains), was.enabled, was.ttl, was.password_env)
        source.pinned_as = was.name
        if rng.random() < d.ttl_change:
            source.ttl = rng.choice([1800, 7200, 604800])
        if rng.random() < d.rename:
            source.name += names.renamed
        # Enabled sources stay enabled: the plain re-runs have no --allow-disable.
        if d.enable is not None and not was.enabled and rng.random() < d.enable:
            source.enabled = True
        if source.password_env and rng.random() < secrets.rotate:
            environ[source.password_env] = secrets.value(rng, 1)
        if rng.random() < d.move:
            # Its second subdomain moves to a new source: released before it is claimed.
            moved = source.subdomains.pop()
            taker = f"{names.label}{number} takes {moved}"
            desired.append(Source(taker, [moved, f"{moved}-x"]))
        desired.append(source)
    for n in range(rng.randint(0, 3)):
        new = Source(f"{names.label}{number} new {n}", [f"{names.host}{number}-new-{n}"])
        if secrets.new is not None and rng.random() < secrets.new:
            new.password_env = f"{names.variables}NEW_PASSWORD_{number}_{n}"
            environ[new.password_env] = secrets.value(rng, 2)
        desired.append(new)
    rng.shuffle(desired)
    return Account(initial, desired, environ, initial_environ)


def set_up(
    account: Account, file: Path, store: SourceStore, apply: Callable[[dict[str, str]], bool]
) -> None:
    """Make the account as it was (`apply` applies `file` with the variables given), then
    write the desired state to `file`, its sources pinned to the ids the account gave them.
    """
    file.write_text(state_yaml(account.initial), encoding="utf-8")
    assert apply(dict(account.initial_environ)), "the account as it was did not apply"
    ids = {source.name: source.id for source in store.sources.values()}
    for source in account.desired:
        source.id = ids.get(source.pinned_as or "")
    file.write_text(state_yaml(account.desired), encoding="utf-8")


def applies_to_converge(apply: Callable[[], bool], settled: Callable[[], bool]) -> int | None:
    """How many plain applies (at most two) leave nothing to do; None if two do not."""
    for applies in (1, 2):
        if apply() and settled():
            return applies
    return None


def hostnames_on_two(store: SourceStore) -> list[str]:
    """The hostnames the account holds on more than one source (the API forbids any)."""
    holders: Counter[str] = Counter(
        host for source in store.sources.values() for host in source.deployment["imgix_subdomains"]
    )
    return [host for host, count in holders.items() if count > 1]
