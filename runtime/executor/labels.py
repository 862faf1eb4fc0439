"""The run-time label monitor: the second check of the label guarantee (spec/labels.md).

`voxc check` proves that no labelled value reaches a sink that is not cleared for it. The
monitor checks the same again while the program runs, on the values that actually flow: every
value carries a :class:`Taint` (what it carries, computed exactly as the compiler's label analysis
computes it, but along the path the run takes), and every send to a model, a tool or a judge
checks the sink's clearance before a byte leaves the process. A program the compiler accepted
never trips it; when it does, the compiler missed a flow, and the run stops with
:class:`~vox.runtime.executor.errors.LabelRefused` naming where the data came from and where it
was going.

A taint mirrors the analysis's ``Labelled``: its ``own`` labels, the plan type whose declared
labels apply to its parts (``shape``), and, for a record literal, what each field was given.
Origins (``why``) say where each own label came from, for the error message. A program whose
only label is `public` has nothing to check: the monitor is then off and costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from vox.compiler.plan.ir import ListType, OptionalType, PlanType, RecordType
from vox.compiler.plan.model import AliasDef, Plan, RecordDef
from vox.runtime.executor.errors import LabelRefused

_NONE: frozenset[str] = frozenset()
Why = tuple[tuple[str, str], ...]  # (label, where it came from)


@dataclass(frozen=True, slots=True)
class Taint:
    """What a value carries (see the module docstring)."""

    own: frozenset[str] = _NONE
    shape: PlanType | None = None
    fields: tuple[tuple[str, "Taint"], ...] | None = None
    why: Why = field(default=(), compare=False)


PUBLIC = Taint()


def because(labels: Iterable[str], origin: str) -> Why:
    return tuple((x, origin) for x in sorted(labels))


def join_why(*whys: Why) -> Why:
    out: list = []
    seen = set()
    for why in whys:
        for entry in why:
            if entry[0] not in seen:  # the first origin of each label is the one reported
                seen.add(entry[0])
                out.append(entry)
    return tuple(out)


def with_own(v: Taint, own: frozenset[str], why: Why, shape: PlanType | None = ...) -> Taint:
    """``v`` carrying ``own`` besides what it carries (``shape`` replaced when given)."""
    shape = v.shape if shape is ... else shape
    return Taint(v.own | own, shape, v.fields if shape is not None else None, join_why(v.why, why))


class LabelMonitor:
    """The labels of the values of one run, and the checks at its sinks."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.on = any(x != "public" for x in plan.labels)
        self._deep: dict[str, tuple[frozenset[str], Why]] = {}
        self.redactions = {(r.line, r.col): frozenset(r.lowers) for r in plan.analysis.redactions}

    # ---- what values carry ---------------------------------------------------------------------

    def record_def(self, ty: PlanType | None) -> RecordDef | None:
        while isinstance(ty, OptionalType):
            ty = ty.inner
        seen = 0
        while isinstance(ty, RecordType) and seen < 64:
            found = self.plan.types.get(ty.name)
            if isinstance(found, AliasDef):
                ty, seen = found.type, seen + 1
                while isinstance(ty, OptionalType):
                    ty = ty.inner
                continue
            return found if isinstance(found, RecordDef) else None
        return None

    def elem_type(self, ty: PlanType | None) -> PlanType | None:
        seen = 0
        while seen < 64:
            while isinstance(ty, OptionalType):
                ty = ty.inner
            if isinstance(ty, ListType):
                return ty.elem
            if isinstance(ty, RecordType) and isinstance(self.plan.types.get(ty.name), AliasDef):
                ty, seen = self.plan.types[ty.name].type, seen + 1
                continue
            return None
        return None

    def deep(self, ty: PlanType | None) -> tuple[frozenset[str], Why]:
        """Every label the plan declares anywhere inside ``ty`` (fields, their fields, elements)."""
        if ty is None:
            return _NONE, ()
        elem = self.elem_type(ty)
        if elem is not None:
            return self.deep(elem)
        record = self.record_def(ty)
        if record is None:
            return _NONE, ()
        hit = self._deep.get(record.name)
        if hit is not None:
            return hit
        self._deep[record.name] = (_NONE, ())  # a cycle (an error the checker reports) ends here
        labels: set[str] = set()
        whys = []
        for f in record.fields:
            own = frozenset(f.labels) - {"public"}
            labels |= own
            whys.append(because(own, f"`{record.name}.{f.name}` is labelled"))
            inner, inner_why = self.deep(f.type)
            labels |= inner
            whys.append(inner_why)
        result = (frozenset(labels), join_why(*whys))
        self._deep[record.name] = result
        return result

    def whole(self, v: Taint) -> tuple[frozenset[str], Why]:
        """The labels of a value used at once (passed on, or read whole by a prompt)."""
        if v is PUBLIC:
            return _NONE, ()
        inner, inner_why = self.deep(v.shape)
        if v.fields:
            parts = [self.whole(fv) for _, fv in v.fields]
            inner = inner.union(*(p[0] for p in parts))
            inner_why = join_why(inner_why, *(p[1] for p in parts))
        if not inner:
            return v.own, v.why
        return v.own | inner, join_why(v.why, inner_why)

    def flat(self, v: Taint) -> Taint:
        """``v`` as a whole, its structure no longer speaking for it (after arithmetic)."""
        labels, why = self.whole(v)
        return Taint(labels, None, None, why) if labels else PUBLIC

    def typed(self, ty: PlanType, labels: Iterable[str], origin: str) -> Taint:
        """A value of ``ty`` that carries ``labels`` as a whole (a parameter, a tool's result)."""
        own = frozenset(labels) - {"public"}
        return Taint(own, ty, None, because(own, origin))

    def get_field(self, v: Taint, name: str) -> Taint:
        record = self.record_def(v.shape)
        info = next((f for f in record.fields if f.name == name), None) if record is not None else None
        own, why, fields, part = v.own, v.why, None, None
        if v.fields is not None:
            part = dict(v.fields).get(name)
            if part is not None:  # a record literal's field: what was put there, not the whole record
                own, why, fields = own | part.own, join_why(why, part.why), part.fields
        if info is None:
            inner = part.shape if part is not None else None
            return Taint(own, inner, fields if inner is not None else None, why)
        extra = frozenset(info.labels) - {"public"}
        if extra:
            own, why = own | extra, join_why(why, because(extra, f"`{record.name}.{name}` is labelled"))
        if not own and fields is None and not self.deep(info.type)[0]:
            return PUBLIC
        return Taint(own, info.type, fields, why)

    def element(self, v: Taint, index: Taint = PUBLIC) -> Taint:
        """An element of the list ``v`` (chosen by ``index``): the list's own labels and the
        declared labels of its element type."""
        labels, why = self.whole(index)
        own = v.own | labels
        return Taint(own, self.elem_type(v.shape), None, join_why(v.why, why)) if own or v.shape else PUBLIC

    def join(self, a: Taint | None, b: Taint) -> Taint:
        """What a value carries when it may be ``a`` or ``b``."""
        if a is None or a is PUBLIC:
            return b
        if b is PUBLIC:
            return a
        shape = a.shape if a.shape is not None else b.shape
        why = join_why(a.why, b.why)
        if a.fields is not None and b.fields is not None:
            fa, fb = dict(a.fields), dict(b.fields)
            fields = tuple((n, self.join(fa.get(n), fb[n]) if n in fb else fa[n]) for n in sorted(set(fa) | set(fb)))
            return Taint(a.own | b.own, shape, fields, why)
        own = a.own | b.own | _field_labels(a) | _field_labels(b)
        return Taint(own, shape, None, why)

    def union(self, parts: Iterable[Taint]) -> Taint:
        labels: set[str] = set()
        whys = []
        for p in parts:
            own, why = self.whole(p)
            labels |= own
            whys.append(why)
        return Taint(frozenset(labels), None, None, join_why(*whys)) if labels else PUBLIC

    def lowered(self, v: Taint, labels: frozenset[str]) -> Taint:
        """``v`` once ``labels`` are taken off (by `redact`): what is left, as a whole."""
        left, why = self.whole(v)
        left = left - labels
        return Taint(left, None, None, tuple(w for w in why if w[0] in left)) if left else PUBLIC

    def redact_lowers(self, line: int, col: int) -> frozenset[str]:
        return self.redactions.get((line, col), _NONE)

    # ---- sinks -----------------------------------------------------------------------------------

    def model_clearance(self, model_name: str) -> tuple[frozenset[str], str]:
        model = self.plan.models[model_name]
        provider = self.plan.providers[model.provider]
        return frozenset(provider.clearance) | {"public"}, provider.name

    def check(self, labels: frozenset[str], why: Why, sink: str, clearance: Iterable[str], step: str) -> None:
        """Refuse to send data carrying ``labels`` to ``sink`` unless it is cleared for all of them."""
        missing = labels - frozenset(clearance) - {"public"}
        if not missing:
            return
        origins = dict(why)
        shown = ", ".join(f"`@{x}`" for x in sorted(missing))
        whence = "; ".join(f"`@{x}`: {origins[x]}" for x in sorted(missing) if x in origins)
        raise LabelRefused(
            f"the label monitor refused to send {shown} data to {sink}, which is not cleared for it"
            + (f" (where it comes from: {whence})" if whence else "")
            + ". Nothing was sent. `voxc check` accepted this program, so its label analysis missed this "
              "flow: this is a bug in voxc, please report it with the program", step, sorted(missing), sink)

    def check_model(self, labels: frozenset[str], why: Why, model_name: str, what: str, step: str) -> None:
        clearance, provider = self.model_clearance(model_name)
        self.check(labels, why, f"model `{model_name}` (provider `{provider}`, {what})", clearance, step)


def _field_labels(v: Taint) -> frozenset[str]:
    if not v.fields:
        return _NONE
    out: set[str] = set()
    for _, fv in v.fields:
        out |= fv.own | _field_labels(fv)
    return frozenset(out)
