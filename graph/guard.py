"""The guard that makes plan-cache hits safe: what a request's values are, and where a plan uses them.

Embeddings cannot tell "what is 15% of 200" from "what is 15% of 300", "call the dentist" from
"call the plumber", or "complete todo 3" from "delete todo 3": they score such near-misses as
high as paraphrases. So a cached plan is only ever served through one of three checks, each on
the request's text, never on a similarity score alone. A check passes only where planning the
new request from scratch (with the rule planner, `graph.pattern_planner`) provably gives the
same plan; anything it cannot tell is a miss.

- **exact**: the normalized requests are equal, so the plan is reused as it is;
- **template**: the requests are equal once their numbers (ASCII digits or words) and quoted
  texts are masked as slots, every literal of the cached plan traces to exactly one slot and
  every slot to exactly one literal, and each new number is written like the old one (words
  for words; digits with the same grouping, decimal point and leading zero). The plan is then
  rewritten with the new request's numbers. Anything the trace cannot explain (a `2` the plan
  wrote for "squared", a slot value used twice, a digit inside a word) means no template hit,
  and so do the values whose reading depends on what they are: a quoted text that changes
  ("'tomorrow'" is no todo, "'todo 3'" names one by number), the number 1 in a calculation
  taking or losing its place, digits of another length in a todo text ("12 pm" is a time,
  "123 pm" is not), a todo id not in plain digits, "hundred and" (one number or two?) and
  "N-M%" (a range when N < M). Two more guard against a value that traces by chance: a
  percentage ("10%") must be written as one in a calculation ("50 / 10" for "10% of 50" divides
  by 100 / 10, not by the 10 typed), and two whole numbers joined as a range ("todos 3 to 4",
  "3-4", "between 3 and 4") make no template at all (a plan listing the range's members holds
  only the ends when there is nothing between them);
- **semantic**: the embedding neighbour is close enough *and* the requests' parameters are
  equal. A calculation made only of numbers, operators and a few words ("of", "and", "average")
  is compared after folding question words ("what's", "calculate") and operators in words
  ("percent" after a number is "%", "times" is "*"), the way the planner itself folds them;
  any other request as typed, after leading politeness ("please", "can you") and with a few
  whole-request forms folded where one planner rule reads both with the same todo text
  ("remove X" is "delete X", "mark X as done" is "complete X", "remind me to X" is "add a
  todo to X"). A first word is folded only when the rest names a todo or the list ("remove
  todo 3"): otherwise it may be part of a todo text ("get up at 6" is not "show up at 6"), and
  "square root of" is "sqrt" only over a number that ends the request ("square root of 16 + 9"
  may be the root of 25). Numbers are compared as typed, and no other word is dropped: a todo
  keeps every word of its text ("the", "please", "finish"), and the planner refuses words it
  does not expect ("what is 2 plus the 2").

A plan that comes out of the template level holds no literal of the old request: every literal
was replaced, and its `final_goal` and `reasoning`, which may quote the old values, are replaced
too. The plan is validated again before it runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from graph.pattern_planner import number_word_runs
from graph.plan import STEP_REFERENCE, Plan, PlanStep
from tools.calculator import FUNCTION_NAMES

SlotKind = Literal["number", "quote"]

_QUOTE = re.compile(r"""(?<!\w)(["“”]|'|‘|’)([^"“”'‘’\n]{1,200}?)(["“”]|'|’|‘)(?!\w)""")
# ASCII digits only: the calculator reads no other digits ("５" is refused), so another script's
# digit stays part of the template instead of becoming a value.
_DIGITS = re.compile(
    r"(?<![\w.,])(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?(?!\w)|(?<![\w.])\.[0-9]+(?!\w)"
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
    """The semantic parameters: `("calculation", folded text)` (and `("asked", ...)` when no
    operator says it is a calculation) or `("text", the request as typed, frame folded)`."""


def canonical_number(text: str) -> str:
    """Return a number's canonical digits: "1,000" and "1000.0" are "1000", ".5" is "0.5".

    Exact for any length (no rounding to a decimal context's precision); anything that is not
    a number in ASCII digits comes back as it is.
    """
    m = re.fullmatch(r"([0-9]*)(?:\.([0-9]+))?", text.replace(",", ""))
    if m is None or not (m[1] or m[2]):
        return text
    whole, fraction = m[1].lstrip("0") or "0", (m[2] or "").rstrip("0")
    return f"{whole}.{fraction}" if fraction else whole


def find_slots(text: str) -> list[Slot]:
    """Return the request's values in order: quoted texts, then numbers outside them."""
    slots: list[Slot] = []
    taken = bytearray(len(text))  # a flag per character: linear however many values there are

    def free(start: int, end: int) -> bool:
        return not any(taken[start:end])

    def take(start: int, end: int) -> None:
        taken[start:end] = b"\x01" * (end - start)

    for m in _QUOTE.finditer(text):
        if m[2].strip():
            slots.append(Slot("quote", m[2], m[2], m.start(2), m.end(2)))
            take(m.start(), m.end())
    for m in _DIGITS.finditer(text):
        if free(m.start(), m.end()):
            slots.append(Slot("number", m[0], canonical_number(m[0]), m.start(), m.end()))
            take(m.start(), m.end())
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


# The rule planner reads "one hundred and five" as 105 but "twenty and five" as two numbers, and
# "20-15%" as 20 minus 15% but "10-15%" as a range of percentages (refused): with such a
# template, which values come in decides how the request is read.
_SCALE_AND = re.compile(r"\b(?:hundred|thousand|million|billion|trillion)\s+and\b", re.I)
_RANGE = re.compile(rf"{_NUMBER_MARK}-{_NUMBER_MARK}\s*(?:%|per\s*cent|pct)", re.I)
_INTEGER = re.compile(r"0|[1-9][0-9]*")
# Two whole numbers joined as a range ("todos 3 to 4", "3-4", "between 3 and 4"): a plan may list
# its members, one step or term each, and for "3 to 4" (or "every other from 3 to 5") that list
# holds only the ends, so it traces while "3 to 9" needs more steps than the plan has.
_SPAN = re.compile(
    rf"({_NUMBER_MARK})\s*(?:[-–—]|\b(?:to|through|thru|till|until)\b)\s*({_NUMBER_MARK})"
    rf"|\bbetween\s+({_NUMBER_MARK})\s+and\s+({_NUMBER_MARK})",
    re.I,
)
# A number the request marks as a percentage ("10%", "10 percent").
_PERCENT_AFTER = re.compile(r"\s*(?:%|(?:percent|per\s*cent|pct)\b)", re.I)
_PERCENT_SIGN = re.compile(r"\s*%")


def _form(slot: Slot) -> tuple[bool, ...]:
    """Return how a number is written, as far as a planner can tell two writings apart.

    Words or digits ("five!" is 5 with an exclamation, "5!" a factorial), a thousands grouping
    and whether a group starts with a non-zero digit ("1,200" may be a list of two numbers,
    "1,000" is not), a decimal point, a leading zero ("007", which the calculator refuses),
    and a bare decimal point (".5").
    """
    text = slot.surface
    if not text[:1].isdigit() and text[:1] != ".":
        return (True,)
    return (
        False,
        "," in text,
        re.search(r",[1-9]", text) is not None,
        "." in text,
        re.match(r"0[0-9]", text) is not None,
        text.startswith("."),
    )


def _digit_shape(text: str) -> str:
    return re.sub(r"[0-9]", "9", text)


def _same_use(old: Slot, new: Slot, whole: bool, is_expression: bool) -> bool:
    """Tell whether `new` may take `old`'s place in one literal of the plan."""
    if is_expression:
        # The planner reads the number 1 alone specially ("1 + 5%" is read, "2 + 5%" is not).
        return (old.value == "1") == (new.value == "1")
    if whole:
        # A field that is just the number, such as a todo id: the planner writes plain digits.
        return all(_INTEGER.fullmatch(s.surface) for s in (old, new))
    if _form(old)[0]:
        return old.surface == new.surface  # number words in a todo text are kept as words
    # Digits in a todo text are copied, but their length decides whether "12 pm" is a time (no
    # todo) and "123 pm" is not: only the same shape of digits is certainly read the same way.
    return _digit_shape(old.surface) == _digit_shape(new.surface)


def _marks(shape: Shape) -> dict[int, int]:
    """Return, for each slot's placeholder in the template, its position -> the slot's index."""
    places = (i for i, ch in enumerate(shape.template) if ch in (_NUMBER_MARK, _QUOTE_MARK))
    return {at: index for index, at in enumerate(places)}


def _whole_range(shape: Shape) -> bool:
    """Tell whether the request joins two whole numbers as a range (see `_SPAN`)."""
    marks = _marks(shape)
    for m in _SPAN.finditer(shape.template):
        ends = [shape.slots[marks[m.start(g)]] for g in range(1, 5) if m[g] is not None]
        if all("." not in s.value for s in ends):
            return True
    return False


def _percentages(shape: Shape) -> set[int]:
    """Return the indexes of the number slots written as a percentage."""
    return {
        index
        for at, index in _marks(shape).items()
        if shape.slots[index].kind == "number" and _PERCENT_AFTER.match(shape.template, at + 1)
    }


def instantiate(plan: Plan, cached: Shape, new: Shape) -> Plan | None:
    """Return `plan` rewritten with `new`'s values, or None when it cannot be done safely.

    `cached` is the request the plan was made for; the two must share a template, and each
    number must be written the same way (see `_form`). A quoted text must be the same on both
    sides: what it says can change how the whole request is read ("'tomorrow'" is no todo,
    "'todo 3'" names one by number, "'x then show my list'" is two requests).
    """
    if cached.template != new.template or len(cached.slots) != len(new.slots):
        return None
    if (
        _RANGE.search(cached.template)
        or _whole_range(cached)
        or any(_SCALE_AND.search(s.normalized) for s in (cached, new))
    ):
        return None
    for a, b in zip(cached.slots, new.slots, strict=True):
        if a.kind != b.kind or (a.kind == "quote" and a.surface != b.surface):
            return None
        if a.kind == "number" and _form(a) != _form(b):
            return None
    masked = cached.template.lower()
    for slot in cached.slots:
        # A quote whose words also appear outside it could be where the plan's text came from.
        if slot.kind == "quote" and slot.surface.lower() in masked:
            return None
    percentages = _percentages(cached)
    literals: list[_Literal] = []
    for index, step in enumerate(plan.steps):
        is_expression = step.tool_name == "calculator"
        for key, value in step.tool_input.items():
            if value is None or isinstance(value, bool):
                continue
            if not isinstance(value, str):
                return None  # a bare number or a structure: not a schema the tools use
            traced = _trace_string(value, (index, key), cached.slots, is_expression)
            if traced is None:
                return None
            for lit in traced:
                old, replacement = cached.slots[lit.slot], new.slots[lit.slot]
                whole = lit.start == 0 and lit.end == len(value)
                if old.kind == "number" and not _same_use(old, replacement, whole, is_expression):
                    return None
                # A percentage the calculation does not write as one was converted, and what
                # traces to it may be a constant equal to it by chance: "10% of 50" as "50 / 10"
                # (100 / 10 is 10) is no template for "20% of 50".
                if (
                    is_expression
                    and lit.slot in percentages
                    and not _PERCENT_SIGN.match(value, lit.end)
                ):
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
#
# A todo keeps the words the person typed, anywhere in the request ("remind me to call the
# dentist please" has "please" in its text, "remind me to finish the report" has "finish"), and
# the rule planner refuses words it does not expect ("what is 2 plus the 2"). So no word is
# dropped or folded just because it usually carries no meaning: a request's parameters are its
# text, rewritten only where the rule planner provably reads both forms the same way.

# Politeness the planner strips from the start of any request (a subset of its own list).
_POLITE = re.compile(
    r"^(?:(?:please|pls|plz|kindly)\b\s*|(?:can|could|would|will)\s+you\s+(?:please\s+)?)", re.I
)
# A request's first word, where each of these names one rule of the planner. "show" and "get"
# differ before "me" ("show me 2+2" is a calculation) and "rid" ("get rid of" deletes). Folded
# only when the rest names a todo or the list (`_NAMES_TODO`): otherwise the verb may be part of
# a todo text an LLM keeps ("get up at 6" and "show up at 6", "remove the old shelf" and "delete
# the old shelf" are different todos), and the planner reads neither form.
_OPENING = [
    (re.compile(r"^(?:delete|remove|erase)(?=\s)", re.I), "delete"),
    (re.compile(r"^complete(?=\s)", re.I), "complete"),
    (re.compile(r"^(?:show|get)(?=\s)(?!\s+(?:me|rid)\b)", re.I), "show"),
]
# Whole-request forms the planner reads with one rule and the same todo text X, kept as typed,
# when X is one clause: "mark X as done" and "tick off X" are "complete X"; "remind me to X",
# "add a task to X" and "new todo: X" are "add a todo to X". X must not hold what another rule
# of the planner would read first: "off" or a closing "done" ("tick off X off", "tick off X
# done"), or a word naming the list ("remind me to put it on the list" is another rule).
_WHOLE = [
    (
        re.compile(r"mark\s+(.+?)\s+(?:as\s+)?(?:done|complete|completed|finished)", re.I),
        "complete ",
    ),
    (re.compile(r"(?:tick|check|cross|strike)\s+off\s+(.+)", re.I), "complete "),
    (
        re.compile(
            # "to" as a word: "remind me tomorrow to X" is a reminder for a time, not "to X".
            r"(?:remind\s+me\s+to\b|add\s+an?\s+(?:todo|task)\s+to\b|new\s+todo\s*:)\s*(.+)",
            re.I,
        ),
        "add a todo to ",
    ),
]
_NAMES_TODO = re.compile(
    r"\b(?:to-?dos?|to\s+dos?|tasks?|items?|reminders?|lists?)\b|^\S+\s+(?:#\s*)?[0-9]+$", re.I
)
_SEPARATOR = re.compile(r"[;,]|\b(?:and|then|also|after)\b", re.I)
_NOT_IN_X = re.compile(
    r"\boff\b|\b(?:done|complete|completed|finished|checked|ticked)$"
    r"|\b(?:to-?dos?|to\s+dos?|tasks?|items?|reminders?|lists?|notes?)\b",
    re.I,
)

# A calculation: question words first (whether any was asked matters only without an operator:
# "5" is refused, "what is 5" is not), then operators in words or symbols.
_ASK = re.compile(
    r"^(?:(what(?:'s|s|\s+is)|how\s+much\s+is|calculate|compute|evaluate|work\s+out)|the)\b\s*"
)
# In the planner's order and with its conditions: "percent" only right after a number and not
# before one ("15 percent 80" stays), "x" only between numbers, then words for operators.
_CALC_FOLDS = [
    (re.compile(p), r)
    for p, r in (
        (
            rf"(?<=[{_NUMBER_MARK})])\s*(?:percent|per\s+cent|pct)\b"
            rf"(?!\s*(?:[{_NUMBER_MARK}.(]|(?:pi|e|tau)\b))",
            "%",
        ),
        (r"×", "*"),
        (r"÷", "/"),
        (r"\bmultiplied\s+by\b|\btimes\b", " * "),
        (rf"(?<=[{_NUMBER_MARK})%])\s+x\s*(?=[{_NUMBER_MARK}(-])", " * "),
        (r"\bdivided\s+by\b", " / "),
        (r"\bplus\b", " + "),
        (r"\bminus\b", " - "),
        (r"\bto\s+the\s+power\s+of\b|\^", " ** "),
        # Only over a number that ends the request: "square root of 16 + 9" may be the root of
        # 25 while "sqrt 16 + 9" is 13 (the planner refuses the first, so an LLM plans it).
        (rf"\bsquare\s+root(?:\s+of)?\b(?=\s*{_NUMBER_MARK}\s*$)", " sqrt "),
        (r"\bmean(?=\s+of\b)", "average"),
        (r"\b(?:maximum|largest|biggest|greatest|highest)(?=\s+of\b)", "max"),
        (r"\b(?:minimum|smallest|lowest|least)(?=\s+of\b)", "min"),
        # Spaces around these operators change nothing; around "-" and "%" they do ("10-15%"
        # is a range, "15% 80" is refused while "15 % 80" is a remainder).
        (r"\s*(\*\*|[+*/])\s*", r" \1 "),
        (r"\s+", " "),
    )
]
_CALC_WORDS = frozenset(
    "of and by increase decrease sqrt average median max min sum squared cubed".split()
)
_CALC_OPERATORS = frozenset("+ - * ** / % ! sqrt average median max min sum squared cubed".split())
_CALC_TOKEN = re.compile(rf"{_NUMBER_MARK}|\*\*|[a-z]+|\S")
_CALC_SYMBOLS = frozenset("+ - * ** / % ! ( ) , .".split())


def _calculation(masked: str, surfaces: list[str]) -> tuple[tuple[str, str], ...] | None:
    """Return the parameters of a calculation made only of numbers, operators and a few words.

    None for anything else: a todo request, or words the planner may read in other ways.
    """
    text, asked = masked.lower(), False
    while (m := _ASK.match(text)) is not None and m.end():
        asked, text = asked or m[1] is not None, text[m.end() :]
    for pattern, replacement in _CALC_FOLDS:
        text = pattern.sub(replacement, text)
    tokens = _CALC_TOKEN.findall(text.strip())
    if not tokens or any(
        t != _NUMBER_MARK and t not in _CALC_WORDS and t not in _CALC_SYMBOLS for t in tokens
    ):
        return None
    values = iter(surfaces)
    text = re.sub(_NUMBER_MARK, lambda _: next(values).lower(), text.strip())
    if any(t in _CALC_OPERATORS for t in tokens):
        return (("calculation", text),)
    return (("calculation", text), ("asked", str(asked)))


def semantic_params(normalized: str, slots: tuple[Slot, ...]) -> tuple[tuple[str, str], ...]:
    """Return what two requests must share for one's plan to serve the other.

    A calculation (numbers, operators and a few words such as "of") is compared after folding
    question words and operators in words ("what's 15 percent of 200" is "15% of 200"); any
    other request as typed, after politeness and with its first command word folded ("remove
    todo 3" is "delete todo 3", "mark X as done" is "complete X"). Numbers are compared as
    typed: a todo keeps "five", "5" or "1,000" as written.
    """
    text = normalized
    while (m := _POLITE.match(text)) is not None and m.end():
        text = text[m.end() :]
    offset = len(normalized) - len(text)
    if any(s.start < offset for s in slots):
        return (("text", text),)
    masked: list[str] = []
    at = offset
    for slot in slots:
        mark = _NUMBER_MARK if slot.kind == "number" else _QUOTE_MARK
        masked += [normalized[at : slot.start], mark]
        at = slot.end
    masked.append(normalized[at:])
    numbers = [s.surface for s in slots if s.kind == "number"]
    if all(s.kind == "number" for s in slots):
        calculation = _calculation("".join(masked), numbers)
        if calculation is not None:
            return calculation
    for pattern, form in _WHOLE:
        m = pattern.fullmatch(text)
        if m is not None and not (_SEPARATOR.search(m[1]) or _NOT_IN_X.search(m[1])):
            text = form + m[1]
            break
    if _NAMES_TODO.search(text):
        for pattern, verb in _OPENING:
            text = pattern.sub(verb, text, count=1)
    return (("text", text),)


def same_parameters(a: Shape, b: Shape) -> bool:
    """Tell whether two requests ask for the same thing with the same values."""
    return a.params == b.params
