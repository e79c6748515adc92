"""The guard that makes plan-cache hits safe: what a request's values are, and where a plan uses them.

Embeddings cannot tell "what is 15% of 200" from "what is 15% of 300", "call the dentist" from
"call the plumber", or "complete todo 3" from "delete todo 3": they score such near-misses as
high as paraphrases. So a cached plan is only ever served through one of three checks, each on
the request's text, never on a similarity score alone:

- **exact**: the normalized requests are equal, so the plan is reused as it is;
- **template**: the requests are equal once their values (numbers in digits or words, quoted
  text) are masked as slots, and every literal of the cached plan traces to exactly one slot
  and every slot to exactly one literal; the plan is then rewritten with the new request's
  values. Anything the trace cannot explain (a `2` the plan wrote for "squared", a slot value
  used twice, a digit inside a word) means no template hit;
- **semantic**: the embedding neighbour is close enough *and* the requests' parameters are
  equal: the same values in the same order, the same operators and action verbs (synonyms
  folded: "remove" is "delete", "%" is "percent"), the same negations and the same remaining
  words, case included (a todo keeps the person's casing). Only filler words are dropped.

A plan that comes out of the template level holds no literal of the old request: every literal
was replaced, and its `final_goal` and `reasoning`, which may quote the old values, are replaced
too. The plan is validated again before it runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from graph.pattern_planner import number_word_runs
from graph.plan import STEP_REFERENCE, Plan, PlanStep
from tools.calculator import FUNCTION_NAMES

SlotKind = Literal["number", "quote"]

_QUOTE = re.compile(r"""(?<!\w)(["“”]|'|‘|’)([^"“”'‘’\n]{1,200}?)(["“”]|'|’|‘)(?!\w)""")
_DIGITS = re.compile(
    r"(?<![\w.,])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![\w])|(?<![\w.])\.\d+(?![\w])"
)
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

_SPACE = re.compile(r"\s+")
_TRAILING = re.compile(r"[\s?]+$")


def normalize(request: str) -> str:
    """Fold a request for the exact level without touching anything a plan could copy.

    Only surrounding and repeated whitespace and trailing question marks go; case, `!` (a
    factorial: "what is 5!") and `.` (a decimal point: "what is 5.") are kept.
    """
    return _TRAILING.sub("", _SPACE.sub(" ", request).strip())


# Private-use characters mark the slots: not word characters, and folded out of requests first.
_NUMBER_MARK = "\ue000"
_QUOTE_MARK = "\ue001"
_NO_MARKS = str.maketrans({_NUMBER_MARK: "\ufffd", _QUOTE_MARK: "\ufffd"})


@dataclass(frozen=True)
class Slot:
    """One value of a request: a number (digits or words) or a quoted text."""

    kind: SlotKind
    surface: str
    """The value as the person typed it ("five", "1,000", "buy milk")."""

    value: str
    """What it means: a number as canonical digits ("5", "1000"), a quote's text as is."""

    start: int
    end: int


@dataclass(frozen=True)
class Shape:
    """What the guard reads from a request: its keys for the three levels."""

    normalized: str
    template: str
    """The normalized request with every slot masked by a placeholder of its kind."""

    slots: tuple[Slot, ...]
    params: tuple[tuple[str, str], ...]
    """The semantic parameters: `(kind, value)` tokens in order (see the module docstring)."""


def canonical_number(text: str) -> str:
    """Return a number's canonical digits: "1,000" and "1000.0" are "1000", ".5" is "0.5"."""
    try:
        value = Decimal(text.replace(",", ""))
    except InvalidOperation:
        return text
    if value == value.to_integral_value():
        return str(value.quantize(Decimal(1)))
    return format(value.normalize(), "f")


def find_slots(text: str) -> list[Slot]:
    """Return the request's values in order: quoted texts, then numbers outside them."""
    slots: list[Slot] = []
    taken: list[tuple[int, int]] = []
    for m in _QUOTE.finditer(text):
        if m[2].strip():
            slots.append(Slot("quote", m[2], m[2], m.start(2), m.end(2)))
            taken.append((m.start(), m.end()))

    def free(start: int, end: int) -> bool:
        return all(end <= a or start >= b for a, b in taken)

    for m in _DIGITS.finditer(text):
        if free(m.start(), m.end()):
            slots.append(Slot("number", m[0], canonical_number(m[0]), m.start(), m.end()))
            taken.append((m.start(), m.end()))
    lowered = text.translate(_ASCII_LOWER)  # same length: offsets stay valid
    for start, end, value in number_word_runs(lowered):
        if free(start, end):
            slots.append(Slot("number", text[start:end], canonical_number(value), start, end))
    return sorted(slots, key=lambda s: s.start)


def read_request(request: str) -> Shape:
    """Return the keys and values the guard compares for `request`."""
    normalized = normalize(request)
    text = normalized.translate(_NO_MARKS)
    slots = tuple(find_slots(text))
    parts: list[str] = []
    at = 0
    for slot in slots:
        mark = _NUMBER_MARK if slot.kind == "number" else _QUOTE_MARK
        parts += [text[at : slot.start], mark]
        at = slot.end
    parts.append(text[at:])
    return Shape(normalized, "".join(parts), slots, semantic_params(text, slots))


# --- Template level: trace every literal of a plan to a slot --------------------------------


@dataclass(frozen=True)
class _Literal:
    """A place in one string of a plan that holds a request's value."""

    field: tuple[int, str]
    """(step index, tool_input key)."""

    start: int
    end: int
    slot: int
    """Index of the slot it traces to."""


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _trace_string(
    text: str, field: tuple[int, str], slots: tuple[Slot, ...], is_expression: bool
) -> list[_Literal] | None:
    """Return where `text` uses the slots, or None if any value in it cannot be traced."""
    covered = [False] * len(text)
    for m in STEP_REFERENCE.finditer(text):
        covered[m.start() : m.end()] = [True] * (m.end() - m.start())
    if is_expression:
        # Function names are the calculator's vocabulary, not values ("log10", "log2").
        for m in _IDENTIFIER.finditer(text):
            if m[0] in FUNCTION_NAMES:
                covered[m.start() : m.end()] = [True] * (m.end() - m.start())
    found: list[_Literal] = []
    # Quotes by their text, then numbers: by value in an expression (a calculator wants
    # digits), by surface elsewhere (a todo keeps the words the person typed).
    for index, slot in enumerate(slots):
        if slot.kind != "quote":
            continue
        for m in re.finditer(re.escape(slot.surface), text):
            if any(covered[m.start() : m.end()]):
                return None
            covered[m.start() : m.end()] = [True] * (m.end() - m.start())
            found.append(_Literal(field, m.start(), m.end(), index))
    numbers = [(i, s) for i, s in enumerate(slots) if s.kind == "number"]
    candidates: list[tuple[int, int, str]] = [
        (m.start(), m.end(), canonical_number(m[0])) for m in _DIGITS.finditer(text)
    ]
    if not is_expression:
        lowered = text.translate(_ASCII_LOWER)
        candidates += [(s, e, text[s:e]) for s, e, _ in number_word_runs(lowered)]
    for start, end, seen in candidates:
        if any(covered[start:end]):
            continue
        if is_expression:
            matches = [i for i, s in numbers if s.value == seen]
        else:
            matches = [i for i, s in numbers if s.surface == seen]
        if len(matches) != 1:
            return None  # a value from nowhere, or from two places: ambiguous
        covered[start:end] = [True] * (end - start)
        found.append(_Literal(field, start, end, matches[0]))
    if any(ch.isdigit() and not c for ch, c in zip(text, covered, strict=True)):
        return None  # a digit inside a word ("mp3", "1e3", "0x10"): not traceable
    return found


def instantiate(plan: Plan, cached: Shape, new: Shape) -> Plan | None:
    """Return `plan` rewritten with `new`'s values, or None when it cannot be done safely.

    `cached` is the request the plan was made for; the two must share a template.
    """
    if cached.template != new.template or len(cached.slots) != len(new.slots):
        return None
    if any(a.kind != b.kind for a, b in zip(cached.slots, new.slots, strict=True)):
        return None
    masked = cached.template.lower()
    for slot in cached.slots:
        # A quote whose words also appear outside it could be where the plan's text came from.
        if slot.kind == "quote" and slot.surface.lower() in masked:
            return None
    literals: list[_Literal] = []
    for index, step in enumerate(plan.steps):
        for key, value in step.tool_input.items():
            if value is None or isinstance(value, bool):
                continue
            if not isinstance(value, str):
                return None  # a bare number or a structure: not a schema the tools use
            traced = _trace_string(
                value, (index, key), cached.slots, step.tool_name == "calculator"
            )
            if traced is None:
                return None
            literals += traced
    used = [lit.slot for lit in literals]
    if sorted(used) != list(range(len(cached.slots))):
        return None  # a slot used twice ("2 squared" as "2 ** 2") or never
    return _rewrite(plan, literals, new)


def _rewrite(plan: Plan, literals: list[_Literal], new: Shape) -> Plan:
    by_field: dict[tuple[int, str], list[_Literal]] = {}
    for lit in literals:
        by_field.setdefault(lit.field, []).append(lit)
    steps: list[PlanStep] = []
    for index, step in enumerate(plan.steps):
        tool_input: dict[str, Any] = dict(step.tool_input)
        for key in tool_input:
            places = sorted(by_field.get((index, key), []), key=lambda lit: -lit.start)
            text = tool_input[key]
            for lit in places:
                slot = new.slots[lit.slot]
                replacement = slot.value if step.tool_name == "calculator" else slot.surface
                text = text[: lit.start] + replacement + text[lit.end :]
            tool_input[key] = text
        steps.append(
            PlanStep(
                step_number=step.step_number,
                tool_name=step.tool_name,
                tool_input=tool_input,
                reasoning="Step of a cached plan, with this request's values.",
            )
        )
    return Plan(steps=steps, final_goal=new.normalized)


# --- Semantic level: the parameters two requests must share ----------------------------------

_PHRASES = [
    (re.compile(p, re.I), r)
    for p, r in (
        (r"\bper\s*cent\b|\bpercent(?:age)?\b|\bpct\b", " % "),
        (r"\bdivided\s+by\b|\bover\b|÷", " / "),
        (r"\bmultiplied\s+by\b|×|(?<=\ue000)\s*x\s*(?=\ue000)", " * "),
        (r"\bto\s+the\s+power\s+of\b|\braised\s+to(?:\s+the\s+power\s+of)?\b|\*\*", " ^ "),
        (r"\bsquare\s+root\s+of\b|\bsquare\s+root\b|√", " sqrt "),
        (r"\bcube\s+root\s+of\b|\bcube\s+root\b", " cbrt "),
        (
            r"\bmark(?:ed)?\b(.+?)\b(?:as\s+)?(?:done|complete|completed|finished)\b",
            r" complete \1 ",
        ),
        (r"\btick\b(.+?)\boff\b|\bcheck\b(.+?)\boff\b|\bcross\b(.+?)\boff\b", r" complete \1\2\3 "),
        (r"\bwhat\s+is\b|\bwhat's\b|\bwhats\b|\bhow\s+much\s+is\b|\bwork\s+out\b", " "),
        (r"\bcan\s+you\b|\bcould\s+you\b|\bwould\s+you\b|\bplease\b|\bkindly\b", " "),
    )
]
_TOKEN = re.compile(rf"[{_NUMBER_MARK}{_QUOTE_MARK}]|\w+(?:['’]\w+)*|[^\w\s]")

FILLER = frozenset(
    """a an the is are be was what whats tell me i i'd i'm want would like to for us my our
    calculate compute evaluate find give solve result answer value just quickly now thanks
    thank you pls hey hi ok okay . ? : “ ” " '""".split()
)
"""Words that never change a plan: dropped before comparing parameters. Deliberately short:
any word not here must be equal in both requests."""

SYNONYMS: dict[str, tuple[str, str]] = {
    **dict.fromkeys("+ plus".split(), ("op", "+")),
    **dict.fromkeys("- minus".split(), ("op", "-")),
    **dict.fromkeys("* times".split(), ("op", "*")),
    "/": ("op", "/"),
    "^": ("op", "^"),
    "%": ("op", "%"),
    **dict.fromkeys("sqrt".split(), ("op", "sqrt")),
    **dict.fromkeys("average mean avg".split(), ("op", "average")),
    **dict.fromkeys("max maximum largest biggest highest".split(), ("op", "max")),
    **dict.fromkeys("min minimum smallest lowest".split(), ("op", "min")),
    **dict.fromkeys("add create new note".split(), ("act", "add")),
    **dict.fromkeys("complete finish tick done".split(), ("act", "complete")),
    **dict.fromkeys("delete remove erase drop".split(), ("act", "delete")),
    **dict.fromkeys("show display view see get".split(), ("act", "show")),
    **dict.fromkeys(
        "todo todos to-do task tasks reminder reminders item items list".split(), ("noun", "todo")
    ),
    **dict.fromkeys(
        "not no never without don't dont doesn't isn't aren't won't".split(), ("neg", "not")
    ),
}
"""Words folded to one meaning. Only unambiguous synonyms: "check" or "put" stay themselves."""


def semantic_params(normalized: str, slots: tuple[Slot, ...]) -> tuple[tuple[str, str], ...]:
    """Return the parameters of a request, in order: values, operators, verbs, words."""
    masked: list[str] = []
    at = 0
    for slot in slots:
        masked += [
            normalized[at : slot.start],
            _NUMBER_MARK if slot.kind == "number" else _QUOTE_MARK,
        ]
        at = slot.end
    masked.append(normalized[at:])
    text = "".join(masked)
    for pattern, replacement in _PHRASES:
        text = pattern.sub(replacement, text)
    values = iter(slots)
    params: list[tuple[str, str]] = []
    for token in _TOKEN.findall(text):
        folded = token.lower().replace("’", "'")
        if token in (_NUMBER_MARK, _QUOTE_MARK):
            slot = next(values)
            params.append((slot.kind, slot.value))
        elif folded == "remind":  # "remind me to X" is "add a todo to X"
            params += [("act", "add"), ("noun", "todo")]
        elif folded in SYNONYMS:
            params.append(SYNONYMS[folded])
        elif folded.endswith("n't"):
            params.append(("neg", "not"))
        elif folded not in FILLER:
            params.append(("word", token))
    return tuple(params)


def same_parameters(a: Shape, b: Shape) -> bool:
    """Tell whether two requests ask for the same thing with the same values."""
    return a.params == b.params
