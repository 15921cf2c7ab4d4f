"""Checks across sources and files: a name, id or hostname used twice, and the models'
cross-field rules run on the raw data so that every error shows in one run."""

from __future__ import annotations

from typing import Any, NamedTuple

from reconciler.loading.located import FileState, Loc
from reconciler.specs import (
    DEPLOYMENT_MODELS,
    HOSTNAME_FIELDS,
    HOSTNAMES_ARE_UNIQUE,
    hostname_count_error,
    ignore_changes_error,
    name_form,
)


# A NamedTuple: about 0.05 ms to define at start-up, against 0.5 for a dataclass.
class Claim(NamedTuple):
    file: str
    line: int
    column: int
    source: int  # global index, to tell one source's own repeats from another's
    pinned: bool = False  # the source has an `id`
    written: str = ""  # the value as the file wrote it: a key may be another form of it

    def place(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


# A plain class, not a dataclass: about 0.01 ms to define at start-up, against 0.3.
class Claims:
    """Names, ids and hostnames seen so far across all files, to find the second use."""

    __slots__ = ("hostnames", "ids", "names", "next_source")

    def __init__(
        self,
        names: dict[str, Claim] | None = None,
        ids: dict[str, Claim] | None = None,
        hostnames: dict[str, Claim] | None = None,
        next_source: int = 0,
    ) -> None:
        self.names = {} if names is None else names
        self.ids = {} if ids is None else ids
        self.hostnames = {} if hostnames is None else hostnames
        self.next_source = next_source

    def copy(self) -> Claims:
        return Claims(dict(self.names), dict(self.ids), dict(self.hostnames), self.next_source)

    def restore(self, saved: Claims) -> None:
        self.names, self.ids, self.hostnames = saved.names, saved.ids, saved.hostnames
        self.next_source = saved.next_source


class CrossSourceChecks(FileState):
    """The checks of one file's sources against each other and the files before it."""

    def _check_claims(self, data: dict[str, Any], claims: Claims) -> None:
        sources = data.get("sources")
        if not isinstance(sources, list):
            return
        for index, source in enumerate(sources):
            number = claims.next_source
            claims.next_source += 1
            if not isinstance(source, dict):
                continue
            base: Loc = ("sources", index)
            self._claim_name(claims, source, base, number)
            self._claim(
                claims.ids,
                source.get("id"),
                (*base, "id"),
                number,
                "id",
                "two specs cannot manage one live source",
            )
            deployment = source.get("deployment")
            if not isinstance(deployment, dict):
                continue
            for key, label in (("imgix_subdomains", "subdomain"), ("custom_domains", "domain")):
                hosts = deployment.get(key)
                if not isinstance(hosts, list):
                    continue
                for position, host in enumerate(hosts):
                    loc = (*base, "deployment", key, position)
                    self._claim(
                        claims.hostnames,
                        host,
                        loc,
                        number,
                        label,
                        HOSTNAMES_ARE_UNIQUE,
                    )

    def _claim_name(self, claims: Claims, source: dict[str, Any], base: Loc, number: int) -> None:
        # imgix allows one name twice (and export writes it so); ids tell such sources apart.
        name = source.get("name")
        # Names alike once normalised show alike in every plan: a look-alike of a reviewed
        # name would pass for it.
        key = name_form(name) if isinstance(name, str) else name
        self._claim(
            claims.names,
            name,
            (*base, "name"),
            number,
            "name",
            "plans and --target identify sources by name: add an id to both to tell them apart",
            pinned=isinstance(source.get("id"), str) and bool(source["id"]),
            key=key,
        )

    def _claim(
        self,
        seen: dict[str, Claim],
        value: Any,
        loc: Loc,
        source: int,
        what: str,
        why: str,
        *,
        pinned: bool = False,
        key: Any = None,
    ) -> None:
        """Record a use of `value` (under `key`, its own by default); report a second one
        unless both sources are `pinned`."""
        if not isinstance(value, str):
            return
        key = value if key is None else key
        spot = self._locate(loc)
        first = seen.setdefault(
            key, Claim(self.file, spot.line + 1, spot.column + 1, source, pinned, value)
        )
        if first.source != source and not (pinned and first.pinned):
            if first.written != value:
                why = f"the same text once Unicode-normalised; {why}"
            self._error(
                loc, f"{what} {value!r} is also used by the source at {first.place()} ({why})"
            )

    def _check_cross_field(self, data: dict[str, Any]) -> None:
        """The models' cross-field rules, on the raw data: pydantic checks them only once
        every field of a source is valid, and all errors are reported in one run."""
        sources = data.get("sources")
        if not isinstance(sources, list):
            return
        for index, source in enumerate(sources):
            if not isinstance(source, dict):
                continue
            deployment = source.get("deployment")
            deployment = deployment if isinstance(deployment, dict) else {}
            self._check_hostname_count(("sources", index, "deployment"), deployment)
            paths = source.get("ignore_changes")
            model = DEPLOYMENT_MODELS.get(str(deployment.get("type")))
            if isinstance(paths, list) and model is not None:
                named = [path for path in paths if isinstance(path, str)]
                problem = ignore_changes_error(model, named)
                if problem is not None:
                    self._error(("sources", index, "ignore_changes"), problem.message())

    def _check_hostname_count(self, base: Loc, deployment: dict[str, Any]) -> None:
        lists = {
            key: value for key in HOSTNAME_FIELDS if isinstance(value := deployment.get(key), list)
        }
        problem = hostname_count_error(
            len(lists.get("imgix_subdomains", [])), len(lists.get("custom_domains", []))
        )
        if problem is not None:
            self._error((*base, next(iter(lists))), problem.message())
