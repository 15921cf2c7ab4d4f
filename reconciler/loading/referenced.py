"""References in a desired-state file: `{env:}`/`{file:}` values read (or left unread),
with what they may stand for; the values never reach a message."""

from __future__ import annotations

from typing import Any

from reconciler import references
from reconciler.loading.located import FileState, Loc
from reconciler.references import MissingReference, UnreadableReference
from reconciler.specs import (
    DEPLOYMENT_MODELS,
    SecretRef,
    fields_by_api_name,
    reference_fields,
    secret_fields,
)


class ReferenceSteps(FileState):
    """Reads the references of one file's sources into its plain data."""

    def _resolve_references(self, data: dict[str, Any]) -> None:
        sources = data.get("sources")
        if not isinstance(sources, list):
            return
        for index, source in enumerate(sources):
            deployment = source.get("deployment") if isinstance(source, dict) else None
            if not isinstance(deployment, dict):
                continue
            kind = deployment.get("type")
            model = DEPLOYMENT_MODELS.get(kind) if isinstance(kind, str) else None
            if model is None:
                continue  # pydantic reports the type; secret fields are unknown until then
            secrets = secret_fields(model)
            referable = reference_fields(model)
            for key, value in list(deployment.items()):
                loc: Loc = ("sources", index, "deployment", key)
                reference = references.parse(value)
                if key in secrets:
                    if isinstance(value, dict):
                        deployment[key] = self._secret(loc, value)
                elif reference is None:
                    continue
                elif key not in referable and key in fields_by_api_name(model):
                    self._error(
                        loc,
                        f"{key} cannot take a reference: a referenced value is never shown, "
                        f"and only text of at least {references.MIN_LENGTH} characters can "
                        "be masked; write the value itself",
                    )
                    self.silenced.add(loc)
                    del deployment[key]
                else:
                    self.sensitive[loc] = str(reference)
                    ref = self._read_reference(loc, reference) if self.resolve else None
                    if ref is None or not ref.resolved:
                        # Unresolved: validate as if absent rather than with a fake value.
                        del deployment[key]
                        self.silenced.add(loc)
                    else:
                        deployment[key] = ref.reveal()
                        self.referenced.setdefault(index, {})[key] = ref

    def _secret(self, loc: Loc, value: dict[Any, Any]) -> Any:
        reference = references.parse(value)
        if reference is None:
            self._error(loc, "must be a reference: {env: NAME} or {file: path}")
            self.silenced.add(loc)
            return None
        optional = self.secrets_optional
        read = self._read_reference(loc, reference, optional=optional) if self.resolve else None
        # Not read (or refused, and reported): the reference alone, so validation goes on.
        return read or SecretRef(reference.kind, reference.name)  # type: ignore[arg-type]

    def _read_reference(
        self, loc: Loc, reference: references.Reference, *, optional: bool = False
    ) -> SecretRef | None:
        """The reference with its value (None when refused); a missing value is allowed
        only when `optional`, and the reference is then returned without one."""
        kind: Any = reference.kind
        try:
            value, locator = references.read(
                reference, environ=self.environ, base=self.folder, root=self.repository
            )
        except MissingReference as exc:
            if optional:
                return SecretRef(kind, reference.name, path=exc.locator.get("file"))
            # No command in the text: plan and apply print it too (validate's summary
            # adds the --no-resolve hint).
            self._unread(loc, str(exc))
            return None
        except UnreadableReference as exc:
            self._error(loc, str(exc))
            return None
        return SecretRef(kind, reference.name, value, path=locator.get("file"))
