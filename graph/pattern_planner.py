"""Offline, rule-based planner: turns everyday calculator and todo requests into a Plan.

A request is cut into clauses at "then", ";", "after that", "also", and at "and" or "," when
what follows starts a new request ("... and show me my list"). Each clause must be read in
full by one rule of a table (a regex matched against the whole clause, and a builder); any
clause no rule reads makes the whole request refused, naming that clause. Todo rules run on the
clause as typed, so todo texts keep their casing; calculator rules run on a normalised copy
(lower case, number words as digits, "percent" as `%`, "it" as the previous result).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from graph.plan import STEP_REFERENCE, Plan, PlanStep
from tools.calculator import parse_expression

MAX_PROMPT_CHARS = 2000
"""Longer prompts are refused outright: the rules are for everyday requests, not documents."""

MAX_PARTS = 3
"""At most this many chained requests ("X, then Y, then Z") are planned."""

_MAX_SPLIT_POINTS = 12
"""More candidate split points than this is certainly more than MAX_PARTS requests."""

_OFFLINE_HINT = (
    'Offline I can do calculations (like "15% of 200" or "square root of 144") and manage '
    'your todo list (like "remind me to call mom" or "show my tasks"); set OPENAI_API_KEY '
    "to enable free-form requests."
)

CAPABILITIES = """\
Without a language model, Crane understands two kinds of requests, up to 3 chained with
"then", "and then" or ";":
- Calculator: arithmetic in symbols or words, percentages, powers and roots, sums,
  products, averages, halves and doubles.
- Todo list: add, list, show, complete and delete todos (by text or by number).
Examples:
- what's 15% of 200
- average of 12, 30 and 48
- square root of 144, then double it
- remind me to renew my passport
- show me my tasks
- mark todo 3 as done
Set OPENAI_API_KEY to enable free-form requests."""


@dataclass(frozen=True)
class PatternResult:
    """What the pattern planner made of a request.

    Attributes:
        plan: The plan, or None when any part of the request could not be planned.
        reason: When plan is None, a sentence for the person: what went wrong, what Crane can
            do offline, and that setting OPENAI_API_KEY enables free-form requests.
        confident: True when the plan is a literal reading of the request, one an LLM would
            not improve on, so the LLM can be skipped. False when there is no plan; when a rule
            read intent from a statement rather than a command ("I need to ...", "I finished
            ...", "done with ...", "the laundry is done"); or when a "then", "and" or "," that
            looked like the start of another request was kept inside a clause because what
            followed did not read as a request ("remind me to pay rent then call mom").
    """

    plan: Plan | None
    reason: str | None
    confident: bool


@dataclass(frozen=True)
class _Draft:
    """One planned step before numbering: the tool call and a phrase for the final goal."""

    tool_name: str
    tool_input: dict[str, Any]
    goal: str
    loose: bool = False
    open_end: bool = False  # a todo text that runs to the end of its clause


@dataclass(frozen=True)
class _Ctx:
    """Where a clause sits in the plan: its step number and what "it" can refer to.

    Attributes:
        joined: The clause follows a plain "and" or ",", which may as well join two things in
            one request ("remind me to back up my phone and delete old photos").
        after_text: The clause before is a todo text that could have run on into this one
            ("remind me to back up my phone, then delete old photos").
    """

    step: int = 1
    last_calc: int | None = None
    last_todo: int | None = None
    joined: bool = False
    after_text: bool = False

    def after(self, draft: _Draft) -> _Ctx:
        """Return the context of the clause that follows `draft`."""
        ctx = replace(self, step=self.step + 1, joined=False, after_text=draft.open_end)
        if draft.tool_name == "calculator":
            return replace(ctx, last_calc=self.step)
        if draft.tool_input["action"] in ("add", "get"):
            return replace(ctx, last_todo=self.step)
        return ctx


_Builder = Callable[[re.Match[str], _Ctx], _Draft | None]


@dataclass(frozen=True)
class _Rule:
    """A clause pattern (matched in full, case-insensitively) and what to plan for it.

    Attributes:
        carries_on: A calculator rule on the previous result ("add 5", "- 5").
        lists: A calculator rule where "and" separates operands ("sum of 3 and 4").
    """

    pattern: re.Pattern[str]
    build: _Builder
    loose: bool = False
    carries_on: bool = False
    lists: bool = False


# --- Text clean-up ------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\ufeff]")
_LEAD_FILLER = re.compile(
    r"^(?:(?:hey|hi|hello|ok|okay|so|um+|uh+|yo|alright)\b[\s,!.]*|crane\b[\s,:!.]*"
    r"|(?:please|pls|plz|kindly|just)\b\s*|(?:can|could|would|will)\s+you\s+(?:please\s+)?"
    r"|i(?:'d|\s+would)\s+like\s+you\s+to\s+|i\s+want\s+you\s+to\s+|go\s+ahead\s+and\s+)",
    re.IGNORECASE,
)
_THANKS = r"(?:please|pls|plz|thanks|thank\s+you|thx|cheers)"
# A "!" right after a number is a factorial ("5!"), not an exclamation. Filler words are only
# surely filler after punctuation (", please", ". Thanks!"): "remind me to say thank you".
_TRAIL_FILLER = re.compile(
    rf"(?:(?:(?:\s*(?:[,.;:?]|(?<![\d)])!))+|\s+[-–—])\s*\b{_THANKS}\b|(?:[\s?.]|(?<![\d)])!)+)$",
    re.IGNORECASE,
)
# After a space alone, a filler word may end a todo's text: see _todo_rule.
_SOFT_FILLER = re.compile(rf"\s+{_THANKS}$", re.IGNORECASE)
_QUOTES = re.compile(r"""^(?:"(.*)"|'(.*)'|“(.*)”|‘(.*)’|`(.*)`)$""", re.DOTALL)


def _strip_filler(text: str, *, soft: bool = False) -> str:
    """Remove polite filler ("hey crane, could you ... please?") around a clause.

    With `soft`, also a filler word after a plain space ("... list please"), which may instead
    end a todo's text ("remind me to say thank you").
    """
    text = text.strip()
    while True:
        stripped = _TRAIL_FILLER.sub("", _LEAD_FILLER.sub("", text)).strip()
        if soft:
            stripped = _SOFT_FILLER.sub("", stripped).strip()
        if stripped == text:
            return text
        text = stripped


def _clean_text(text: str) -> str:
    """Tidy a todo text: trim, drop trailing punctuation and wrapping quotes."""
    text = " ".join(text.split()).rstrip(".!?,;:")
    while (m := _QUOTES.match(text)) is not None:
        text = next(g for g in m.groups() if g is not None).strip()
    return text


def _has_content(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


# --- Number words -------------------------------------------------------------------------

_UNITS = {w: i for i, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split())}  # fmt: skip
_TENS = {w: 10 * i for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), 2)}  # fmt: skip
_SCALES = {"thousand": 10**3, "million": 10**6, "billion": 10**9, "trillion": 10**12}
_NUMBER_WORD = "|".join(sorted([*_UNITS, *_TENS, *_SCALES, "hundred"], key=len, reverse=True))
_SCALE_AND = re.compile(rf"\b(hundred|thousand|million|billion)\s+and\s+(?=(?:{_NUMBER_WORD})\b)")
_NUMBER_RUN = re.compile(
    rf"\b(?:a\s+(?=(?:hundred|thousand|million|billion|trillion)\b))?(?:{_NUMBER_WORD})"
    rf"(?:(?:\s+|-)(?:{_NUMBER_WORD}))*\b(?:\s+point(?:\s+(?:{'|'.join(list(_UNITS)[:10])})\b)+)?"
)


def _words_value(run: str) -> str | None:
    """Read a run of number words ("a hundred", "twenty-five", "three point five")."""
    whole, _, fraction = run.partition(" point ")
    words = re.split(r"[\s-]+", whole.strip().removeprefix("a "))
    total, current, last, last_scale = 0, 0, "", 10**15
    for word in words:
        if word in _UNITS:  # "twenty one" but not "one two", "twenty eleven" or "twenty zero"
            if last == "unit" or (last == "tens" and not 0 < _UNITS[word] < 10):
                return None
            current, last = current + _UNITS[word], "unit"
        elif word in _TENS:
            if last in ("unit", "tens") or current % 100:
                return None
            current, last = current + _TENS[word], "tens"
        elif word == "hundred" and current < 10 and last != "hundred":
            current, last = (current or 1) * 100, "hundred"
        elif word in _SCALES and _SCALES[word] < last_scale:
            last_scale = _SCALES[word]
            total, current, last = total + (current or 1) * last_scale, 0, "scale"
        else:
            return None
    digits = "".join(str(_UNITS[w]) for w in fraction.split())
    return f"{total + current}.{digits}" if digits else str(total + current)


def number_word_runs(text: str) -> list[tuple[int, int, str]]:
    """Return `(start, end, value in digits)` for each run of lower-case number words in `text`.

    Runs that do not read as one number ("one two", "twenty eleven") are left out.
    """
    return [
        (m.start(), m.end(), value)
        for m in _NUMBER_RUN.finditer(text)
        if (value := _words_value(m[0])) is not None
    ]


def _number_words(text: str) -> str:
    """Replace number words by digits, leaving runs that are not one number untouched."""
    return _NUMBER_RUN.sub(lambda m: _words_value(m[0]) or m[0], _SCALE_AND.sub(r"\1 ", text))


# --- Todo rules ---------------------------------------------------------------------------

_NOUN = r"(?:to-?dos?|tasks?|items?|reminders?)"
_LIST = rf"(?:(?:to-?do|to\s+do|task|reminder)\s+list|list|to\s+dos|{_NOUN})"
_ON_LIST = re.compile(rf"(.+?)\s+(?:off|from|out\s+of|on|in|to)\s+(?:of\s+)?(?:my|the|our)\s+{_LIST}", re.I)  # fmt: skip
_IT = re.compile(r"it|that|this|that\s+one|this\s+one|the\s+same\s+one|that\s+(?:todo|task|item)", re.I)  # fmt: skip
_ID = re.compile(rf"({_NOUN}\s*)?((?:number|no\.?)\s*|#\s*)?(\d+|[a-z -]+)", re.I)
_LEAD_ARTICLE = re.compile(r"^(?:the|my|our|that|this)\s+", re.I)
_LEAD_NOUN = re.compile(rf"^{_NOUN}\s+(?:(?:called|named|about|to|for|saying|that\s+says)\s+)?", re.I)  # fmt: skip
_TRAIL_NOUN = re.compile(rf"\s+{_NOUN}$", re.I)
_PLURAL = re.compile(r"\b(?:to-?dos|tasks|items|reminders)\b", re.I)
# Words naming the list or its todos, not one todo: "delete my todos", "mark my tasks as done".
_LIST_WORDS = frozenset("todo todos to do dos task tasks item items reminder reminders list lists thing things stuff entry entries".split())  # fmt: skip
_QUESTION_WORD = re.compile(r"(?:what|which|who|whose|how|when|where|why)\b", re.I)
# For the refusal of "delete all my todos" or "mark my tasks as done".
_CHANGE = re.compile(r"\b(?:delete|remove|erase|clear|complete|mark|finish|check|tick|cross|cancel)\b", re.I)  # fmt: skip
_SEVERAL = re.compile(r"\b(?:all|every|everything|to-?dos|tasks|items|reminders)\b", re.I)
# "delete todo 3 please", "remove milk from my list thanks", "delete it please": filler after a
# todo marker, a number or "it" (in "complete say thank you", the words end the todo's text).
_MARKED_FILLER = re.compile(rf"(.*\b(?:{_NOUN}|list|\d+)|(?:{_IT.pattern})|(?:{_NUMBER_WORD})(?:[\s-]+(?:{_NUMBER_WORD}))*)[\s,]+{_THANKS}", re.I)  # fmt: skip
# Words that never name a todo by themselves: "delete all my todos" must not delete "all my",
# and "remove 5 from 12" is not about a todo called "5 from 12".
_NOT_A_TODO = frozenset("all any each every everything anything something nothing them those these of my the whole entire list and or from to by off plus minus times".split())  # fmt: skip
# A todo named by its place in the list ("the second todo", "my last task", "the top one") is
# refused: the store finds todos by text or number, and "second" is neither.
_PLACES = frozenset("first second third fourth fifth sixth seventh eighth ninth tenth last next top bottom latest newest oldest earliest previous final penultimate recent".split())  # fmt: skip
_PLACE_FILLER = frozenset(["one", "ones", "most", "very", *_UNITS, *_TENS, *_NOT_A_TODO])
_TODO_WORD = re.compile(rf"\b(?:{_NOUN}|list|one)\b", re.I)
_PLACE = re.compile(rf"\b(?:{'|'.join(_PLACES)}|\d+(?:st|nd|rd|th))\b", re.I)
_PLACE_NOUN = re.compile(
    rf"{_PLACE.pattern}\s+(?:one|{_NOUN})\b", re.I
)  # "the last task about rent"


def _by_place(words: set[str]) -> bool:
    """Tell whether a todo's words only give its place in the list ("last one", "2nd")."""
    places = {w for w in words if w in _PLACES or re.fullmatch(r"\d+(?:st|nd|rd|th)", w)}
    return bool(places) and words <= places | _PLACE_FILLER


def _todo(action: str, goal: str, text: str | None = None, todo_id: str | None = None) -> _Draft:
    return _Draft("todo_store", {"action": action, "text": text, "todo_id": todo_id}, goal)


def _target(
    raw: str, ctx: _Ctx, *, need_marker: bool, bare_it: bool = True
) -> tuple[str | None, str | None] | None:
    """Read which todo a clause names: ``(text, None)``, ``(None, id)``, or None if unclear.

    `need_marker` demands words saying it is a todo ("task 2", "the X todo", "from my list"),
    for verbs such as "cancel" or "show" that just as often mean something else. Without
    `bare_it`, "it" (or "that") alone does not name the todo of an earlier step.

    A target naming several todos ("my tasks", "the old items", "all my todos") or asking
    ("what is done") is refused: the store acts on one todo at a time.
    """
    text, marker = _clean_text(raw), False
    if (m := _MARKED_FILLER.fullmatch(text)) is not None:
        text = _clean_text(m[1])
    if _PLACE_NOUN.search(text):
        return None
    if (m := _ON_LIST.fullmatch(text)) is not None:
        text, marker = m[1], True
    if _IT.fullmatch(text):
        if not (bare_it or _TODO_WORD.search(text)):
            return None
        return (None, f"{{{{step_{ctx.last_todo}.id}}}}") if ctx.last_todo else None
    if _QUESTION_WORD.match(text):
        return None
    text = _LEAD_ARTICLE.sub("", text)
    if (m := _ID.fullmatch(text)) is not None and (marker or m[1] or m[2] or not need_marker):
        number = m[3] if m[3].isdigit() else _words_value(m[3].lower().strip())
        if number is not None and number.isdigit():
            return None, str(int(number))
    lead, trail = _LEAD_NOUN.match(text), _TRAIL_NOUN.search(text)
    if any(_PLURAL.search(m[0]) for m in (lead, trail) if m is not None):
        return None
    stripped = _TRAIL_NOUN.sub("", _LEAD_NOUN.sub("", text))
    marker, text = marker or stripped != text, _clean_text(stripped)
    words = {w for w in re.findall(r"[^\W_]+", text.lower()) if not w.isdigit()}
    if (need_marker and not marker) or words <= _NOT_A_TODO | _LIST_WORDS or _by_place(words):
        return None
    return text, None


_DAY = r"(?:today|tonight|tomorrow|tmrw|(?:mon|tues|wednes|thurs|fri|satur|sun)day|weekend|morning|afternoon|evening|night|week|month|year)"  # fmt: skip
_TIME = r"(?:\d{1,2}(?:[:.]\d{2})?\s*(?:am|pm|a\.m\.?|p\.m\.?|o'?clock|h)|\d{1,2}:\d{2}|noon|midday|midnight)"  # fmt: skip
_MOMENT = rf"(?:(?:at|on|by|in|this|next|the|later)\s+)*(?:{_DAY}|{_TIME}|later|soon|\d+\s+(?:minutes?|mins?|hours?|hrs?|days?|weeks?))"  # fmt: skip
# A reminder for a time is not a todo: "set a reminder for 5pm", "... for tomorrow to call mom".
_WHEN = re.compile(rf"{_MOMENT}(?:\s+{_MOMENT})*(?:\s+(?:to|that)\s+.*)?", re.I)
_BARE_LIST = re.compile(rf"(?:my\s+)?{_LIST}", re.I)  # "I need to my tasks" is no request
_CALC_VERB = re.compile(r"(?:calculate|compute|work\s+out|figure\s+out|find\s+out|know|solve|evaluate|check)\s+", re.I)  # fmt: skip
# A calculation the rules could not read, after a _CALC_VERB ("work out 3-4 times a week" is not).
_MATHS = re.compile(r"%|\d\s*per\s*cent|\bpct\b|\d\s*[+*/^×÷=]\s*\d", re.I)


def _add(m: re.Match[str], ctx: _Ctx) -> _Draft | None:
    text = _clean_text(m["text"])
    if not _has_content(text) or _IT.fullmatch(text) or _WHEN.fullmatch(text):
        return None
    draft = _todo("add", f'add "{text}" to the todo list', text=text)
    return replace(draft, open_end=m.end("text") == len(m.string))


def _need(m: re.Match[str], ctx: _Ctx) -> _Draft | None:
    """Plan "I need to ...": a todo, unless what is needed is a calculation or a todo request.

    "I need to calculate 15% of 80" (or "... to know what 15% of 80 is", "... to double 21")
    is the calculation; one the calculator rules cannot read ("I need to work out 15% of 80
    for the report") is refused, never kept as a todo text. "I need to add milk to my list"
    adds "milk" (and "... to show my list" shows it), but "I need to finish task 4" says the
    task is not done yet and "I need to delete todo 3" may be a note to self: both refused.
    ("I need to delete old photos", naming no todo, is a todo.)
    """
    text = _clean_text(m["text"])
    polite = _strip_filler(text, soft=True)
    inner = replace(ctx, after_text=True)  # complete or delete only with a todo marker
    for rule in _TODO_RULES if not _BARE_LIST.fullmatch(text) else []:
        if not rule.loose and (draft := _todo_rule(rule, text, polite, inner)) is not None:
            return draft if draft.tool_input["action"] in ("add", "list") else None
    verb = _CALC_VERB.match(polite)
    if (draft := _plan_math(polite[verb.end() :] if verb else polite, ctx)) is not None:
        return draft
    if verb and _MATHS.search(text[verb.end() :]):
        return None
    return _add(m, ctx)


def _list(m: re.Match[str], ctx: _Ctx) -> _Draft:
    return _todo("list", "show the todo list")


def _one(action: str, verb: str, *, need_marker: bool = False) -> _Builder:
    """Build a rule action for get, complete or delete, which name one todo.

    A complete or delete after a todo text it could belong to ("remind me to back up my phone
    and delete old photos") needs a todo marker ("the X todo", "X from my list", "todo 3"):
    else it is read as part of that text (or refused, after "then"). There "it" alone is the
    todo before only after "then", with a verb that needs no marker ("add a todo to pay rent,
    then delete it"): not "remind me to download the app and delete it", nor "remind me to
    book the hotel, then cancel it".
    """

    def build(m: re.Match[str], ctx: _Ctx) -> _Draft | None:
        strict = action in ("complete", "delete") and ctx.after_text
        bare_it = not (strict and (need_marker or ctx.joined))
        target = _target(m["target"], ctx, need_marker=need_marker or strict, bare_it=bare_it)
        if target is None:
            return None
        text, todo_id = target
        what = f'the todo matching "{text}"' if text else f"todo {todo_id}"
        if todo_id and not todo_id.isdigit():
            what = f"the todo from step {ctx.last_todo}"
        return _todo(action, verb.format(what), text=text, todo_id=todo_id)

    return build


_T, _DONE = r"(?P<target>.+?)", r"(?:done|complete|completed|finished|checked(?:\s+off)?|ticked(?:\s+off)?)"  # fmt: skip
_COMPLETE, _DELETE = _one("complete", "mark {} as done"), _one("delete", "delete {}")

# One rule per line reads as a table; ruff format would spread each over several lines.
# fmt: off
_TODO_TABLE: list[tuple[str, _Builder, bool]] = [
    # Add: the text is everything after the command words.
    (rf"(?:add|put|pop|stick|write|jot|note|throw|place)\s+(?:down\s+)?(?:to|on|onto)\s+(?:my|the)\s+{_LIST}\s*[:\-–]?\s*(?P<text>.+)", _add, False),
    (rf"(?:add|put|pop|stick|write|jot|note|throw|place|include)\s+(?:down\s+)?(?P<text>.+?)\s+(?:to|on|onto|in|into)\s+(?:my|the|our)\s+(?:[\w-]+\s+)?{_LIST}", _add, False),
    (rf"(?:add|put|save|log)\s+(?P<text>.+?)\s+as\s+an?\s+(?:new\s+)?{_NOUN}", _add, False),
    (r"(?:add|create|make|put|set(?:\s+up)?|start|new|write|jot\s+down|note\s+down|log|record)\s+(?:me\s+)?(?:(?:a|an|another|one\s+more)\s+)?(?:new\s+)?(?:to-?do|to\s+do|task|reminder)(?:\s+item)?(?:\s*[:\-–]\s*|\s+(?:to|for|that\s+says|saying|called|named|about)\s+|\s+(?!lists?\b))(?P<text>.+)", _add, False),
    (r"(?:new\s+)?(?:to-?do|task|reminder|note)\s*[:\-–]\s*(?P<text>.+)", _add, False),
    (r"remind\s+me\s+(?:to|about|of|that\s+i\s+(?:need|have)\s+to)\s+(?P<text>.+)", _add, False),
    (r"(?:don'?t|do\s+not)\s+(?:let\s+me\s+)?forget\s+(?:to\s+|about\s+)?(?P<text>.+)", _add, False),
    (r"(?:make\s+a\s+note|note\s+to\s+self)\s*(?:to\s+|:\s*|-\s*)(?P<text>.+)", _add, False),
    (r"(?:i|we)(?:'ve|\s+have|'d)?\s+(?:(?:really|still|also|definitely|just)\s+)?(?:need\s+to|have\s+to|must|should|ought\s+to|gotta|got\s+to|better)\s+(?P<text>.+)", _need, True),
    # List.
    (rf"(?:show|list|display|view|see|give|get|read|print|fetch|pull\s+up|bring\s+up|open|check)(?:\s+(?:me|us))?(?:\s+(?:all|everything))?(?:\s+(?:of|on|in))?(?:\s+(?:my|our|the))?(?:\s+(?:current|open|pending|outstanding|remaining|active|whole|full|entire))?\s+{_LIST}", _list, False),
    (rf"what(?:'s|s|\s+is|\s+are)?\s+(?:on|in)\s+(?:my|the)\s+{_LIST}(?:\s+(?:today|now|right\s+now))?", _list, False),
    (rf"what\s+(?:are|'re)\s+(?:all\s+)?my\s+(?:current\s+|open\s+)?{_LIST}", _list, False),
    (r"what\s+(?:do|have|should|must)\s+(?:i|we)\s+(?:got\s+)?(?:(?:have|need|got)\s+)?(?:to\s+)?do(?:\s+today|\s+next|\s+now)?", _list, False),
    (rf"what(?:'s|s|\s+is)\s+(?:left|remaining|pending|outstanding|next)(?:\s+to\s+do|\s+on\s+my\s+{_LIST})?", _list, False),
    (rf"what\s+(?:do|have)\s+(?:i|we)\s+(?:got\s+|have\s+)?(?:on|in)\s+(?:my|the)\s+{_LIST}", _list, False),
    (r"(?:show|tell)\s+me\s+what\s+(?:i|we)\s+(?:have|need|'ve\s+got)\s+to\s+do(?:\s+today|\s+next|\s+now)?", _list, False),
    (rf"(?:what|which)\s+{_NOUN}\s+(?:do\s+i\s+have|are\s+(?:there|left|open|pending))(?:\s+left)?", _list, False),
    (rf"(?:do\s+i\s+have\s+)?any\s+{_NOUN}(?:\s+left)?|(?:my\s+)?{_LIST}", _list, False),
    # Complete, delete, show one todo, by text, by number, or "it" (the todo of an earlier step).
    (rf"(?:mark|set|flag|tick|check)\s+{_T}\s+(?:as\s+)?{_DONE}", _COMPLETE, False),
    (rf"(?:check|tick|cross|strike|mark)\s+{_T}\s+off(?:\s+(?:of\s+)?(?:my|the)\s+{_LIST})?", _COMPLETE, False),
    (rf"(?:check|tick|cross|strike)\s+off\s+{_T}(?:\s+(?:as\s+)?{_DONE})?", _COMPLETE, False),
    (rf"complete\s+{_T}", _COMPLETE, False),
    (rf"(?:finish|close|resolve)\s+{_T}", _one("complete", "mark {} as done", need_marker=True), False),
    (rf"(?:i|we)(?:'ve|\s+have)?\s+(?:just\s+|already\s+|now\s+)?(?:finished|completed|done|did|ticked\s+off|checked\s+off)\s+{_T}", _COMPLETE, True),
    (rf"(?:(?:i'm|i\s+am|we're|we\s+are)\s+)?(?:all\s+)?(?:done|finished)\s+with\s+{_T}", _COMPLETE, True),
    (rf"(?:just\s+)?(?:finished|completed)\s+{_T}", _COMPLETE, True),
    (rf"{_T}\s+(?:is|are|'s)\s+(?:all\s+|now\s+)?(?:done|finished|completed?|taken\s+care\s+of)", _COMPLETE, True),
    (rf"(?:delete|remove|erase|get\s+rid\s+of|trash|discard)\s+{_T}", _DELETE, False),
    (rf"(?:cancel|scrap|ditch|drop|forget(?:\s+about)?|clear|take|bin|nuke|kill)\s+{_T}", _one("delete", "delete {}", need_marker=True), False),
    (rf"(?:show|get|display|view|open|read|fetch|see)(?:\s+me)?(?:\s+(?:the\s+)?details\s+(?:of|for|on))?\s+{_T}", _one("get", "show {}", need_marker=True), False),
    (rf"what(?:'s|s|\s+is)\s+(?P<target>{_NOUN}\s*(?:number\s*|#\s*)?\d+)", _one("get", "show {}"), False),
]
# fmt: on
_TODO_RULES = [_Rule(re.compile(p, re.I), build, loose) for p, build, loose in _TODO_TABLE]

# --- Calculator rules ---------------------------------------------------------------------

_REF = r"\{\{step_\d+\.result\}\}"
# "1,000" is read as "1_000" (see _THOUSANDS); the underscores are dropped from the final plan.
_NUMBER = r"\d+(?:_\d{3})*(?:\.\d+)?"
_PLAIN = rf"(?:-\s?)?(?:{_NUMBER}|{_REF})"
_SIMPLE = rf"(?:-\s?)?(?:{_NUMBER}%?|{_REF}|pi|e)"
_ATOM = rf"(?:-\s?)?(?:{_NUMBER}%?|{_REF}|pi|e|\([^()]*\))"
_NAMES = frozenset("sqrt cbrt abs round floor ceil min max sum average mean avg median factorial log ln log10 log2 exp pow pi e tau".split())  # fmt: skip
_CONSTANTS = frozenset({"pi", "e", "tau"})
_FUNCTIONS = _NAMES - _CONSTANTS
# Functions that may be written without brackets, as in "square root of 16" ("sqrt 16").
_PREFIX_FUNCTIONS = frozenset("sqrt cbrt factorial ln log10 log exp abs round floor ceil".split())
_POSTFIX_POWERS = {"squared": "2", "cubed": "3"}
_TOKEN = re.compile(rf"{_REF}|\d+(?:\.\d+)?|\*\*|//|[-+*/%^(),]|[a-z_][a-z0-9_]*|\s+")
_HAS_OPERATOR = re.compile(r"[-+*/%^]|[a-z]\(")
_MATH_CHARS = str.maketrans({"×": "*", "÷": "/", "−": "-", "–": "-", "²": "^2", "³": "^3", "√": " sqrt ", "’": "'"})  # fmt: skip
# "√16 + 1" is sqrt(16) + 1: the root sign binds to the number right after it, unless a power,
# percent or factorial follows ("√16²" is left to the checks on "sqrt 16 ^ 2", and refused).
_ROOT_SIGN = re.compile(r"√\s*(\d+(?:\.\d+)?|\([^()]*\))(?!\s*(?:[\d.%!²³^(]|\*\*|squared|cubed|factorial|per\s*cent|pct))")  # fmt: skip
_QUESTION_PREFIX = re.compile(
    r"^(?:what(?:'s|s|\s+is|\s+are|\s+does|\s+do)\b|what(?=\s*[-\d(])|how\s+much(?:\s+is|\s+are"
    r"|\s+does)?\b|calculate\b|compute\b|evaluate\b|work\s+out\b|figure\s+out\b|solve\b|tell\s+me"
    r"\b|give\s+me\b|find(?:\s+out)?\b|show\s+me\b|quick(?:ly)?\b|the\s+(?:value|answer|result)\s+"
    r"(?:of|to)\b|the\b)\s*"
)
_QUESTION_SUFFIX = re.compile(r"\s*(?:=\s*\??|\bequals?\b\s*\??|\bis\b|\bmakes?\b|\bcomes?\s+to\b|\bfor\s+me\b|[?.]|(?<![\d)])!)\s*$")  # fmt: skip
# A thousands grouping becomes "1_000". Where a comma may also separate list items, the grouping
# is ambiguous unless every group after a comma starts with 0: "1,000, 2,000 and 3,000" are
# thousands (no one lists "000"), but "sum of 100,200 and 300" may be 100 and 200 (_items).
_THOUSANDS = re.compile(r"\b\d{1,3}(?:,\d{3})+(?![\d,])|\b\d{1,3}(?:,\d{3})+(?=,\s)")
_GROUPING = re.compile(r"(?<=\d)_(?=\d)")
_AMBIGUOUS_GROUPING = re.compile(r"(?<=\d)_[1-9]")
# "15 percent 80" is left as typed (and refused): "percent" never means modulo.
_PERCENT_WORD = re.compile(r"(?<=[\d)}])\s*(?:percent|per\s+cent|pct)\b(?!\s*(?:[\d.(]|\{\{|(?:pi|e|tau)\b))")  # fmt: skip
# "10-15% of 200" is a range of percentages, not 10 - 15% of 200: see _percent_range.
_RANGE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)%(\s*of\b)?")
_IT_CALC = re.compile(r"\b(?:it|that|this|(?:the|that|this)\s+(?:(?:previous|last)\s+)?(?:result|answer|number|value))\b")  # fmt: skip
# Postfix "squared", "cubed", "!" and "factorial", "of" after a percentage or a fraction, and
# functions without brackets are left for _Reader, which decides their grouping.
# fmt: off
_WORD_OPERATORS = [(re.compile(p), r) for p, r in [
    (r"\b(?:raised\s+)?to\s+the\s+(?:power\s+(?:of\s+)?)?(\d+)(?:st|nd|rd|th)?(?:\s+power)?\b", r" ** \1 "),
    (r"\braised\s+to(?:\s+the\s+power(?:\s+of)?)?\b|\bto\s+the\s+power(?:\s+of)?\b", " ** "),
    # "x" is a times sign ("9 x 6", "9x6"), but not in "0x10", which may be hexadecimal.
    (r"\bmultiplied\s+by\b|\btimes\b|(?<=[\d)%}])\s+x\s*(?=[\d(-])|(?<=[\d)%}])(?<!(?<![\d.])0)x\s*(?=[\d(-])", " * "),
    (r"\bdivided\s+by\b|(?<!%)(?<!% )\bover\b", " / "),  # "20% over 100" may be 120
    (r"\bplus\b", " + "),
    (r"\bminus\b|\bnegative\b", " - "),
    (r"\bmod(?:ulo)?\b", " % "),
    (r"\b(\d+\s*/\s*\d+)\s+of\b", r" (\1) of "),
    (r"\bsquare\s+root(?:\s+of)?\b", " sqrt "),
    (r"\bcube\s+root(?:\s+of)?\b", " cbrt "),
    (r"\bnatural\s+log(?:arithm)?(?:\s+of)?\b", " ln "),
    (r"\blog(?:arithm)?\s+base\s+10(?:\s+of)?\b", " log10 "),
    (r"\b(log|ln|exp|factorial|absolute\s+value)\s+of\b", r" \1 "),
    (r"\babsolute\s+value\b", " abs "),
]]
# fmt: on


def _parses(expression: str) -> bool:
    """Check that the calculator accepts an expression, with step references as numbers."""
    probe = _GROUPING.sub("", STEP_REFERENCE.sub("1", expression))
    if _TOKEN.sub("", probe) or not set(re.findall(r"[a-z_][a-z0-9_]*", probe)) <= _NAMES:
        return False
    try:
        parse_expression(probe)
    except Exception:  # the calculator's own errors or anything else: never raise, refuse
        return False
    return True


# --- Reading an expression's grouping ---------------------------------------------------------

_SUM, _PRODUCT, _UNARY, _POWER, _ATOMIC = range(1, 6)
_MAX_DEPTH = 20
_FRACTION = re.compile(r"\d+(?:\.\d+)? / \d+(?:\.\d+)?")
_READ_TOKEN = re.compile(
    rf"\s*(?:(?P<number>{_NUMBER})|(?P<ref>{_REF})|(?P<name>[a-z_][a-z0-9_]*)"
    r"|(?P<op>\*\*|//|[-+*/%^(),!]))"
)


class _Unreadable(Exception):
    """An expression that does not parse, or whose grouping its words leave open."""


@dataclass(frozen=True)
class _Node:
    """A piece of a read expression.

    Attributes:
        text: The piece in the calculator's grammar.
        level: How tightly the text holds together, from _SUM to _ATOMIC.
        kind: "percent" (`8%`), "power" (`2 ** 3`, "2 squared"), "factorial" ("3!"),
            "fraction" (`(1 / 3)`, which "of" may follow), "one" (the number 1), or "".
    """

    text: str
    level: int
    kind: str = ""

    def at(self, level: int) -> str:
        """Return the text as an operand that must hold together at `level`."""
        return self.text if self.level >= level else f"({self.text})"


class _Reader:
    """Read an expression in the calculator's grammar, making every grouping explicit.

    What the words or symbols leave open is refused (raises _Unreadable), never guessed:

    - A percentage added or subtracted ("100 + 10% + 10%", "200 + 5% - 3", "5% + 5%"): a
      person may mean the pocket-calculator reading, the calculator reads N/100. Only "1 + N%"
      (and "1 - N%"), the same either way, is read: the percentage templates use it. The one
      reading planned, "80 + 10%" as 88, is a rule of _CALC_TABLE, not of this reader.
    - A function without brackets ("sqrt 16", from "square root of 16") or "of" after a
      percentage or fraction ("10% of 50") takes one operand, which must end the expression or
      the bracket: "square root of 3 squared plus 4 squared" and "20% of 100 plus 5" are refused.
    - Stacked powers ("2^3^2"), a power after a sign ("-2^2" or "-2 squared": -4 or 4?
      "(-2) squared" is read), and a postfix power or factorial on an exponent ("2 to the
      power of 3 squared").
    - In a function's brackets, a thousands grouping ("max(100,200)": one number or two?).

    Postfix "squared", "cubed", "!" and "factorial" apply left to right: "2 cubed squared" is
    (2 ** 3) ** 2, "3 squared factorial" is factorial(3 ** 2).
    """

    def __init__(self, text: str) -> None:
        """Cut `text` into tokens, each noting whether a space came before it."""
        self.tokens: list[tuple[str, str, bool]] = []
        position, text = 0, text.rstrip()
        while position < len(text):
            if (m := _READ_TOKEN.match(text, position)) is None or m.lastgroup is None:
                raise _Unreadable
            self.tokens.append((m.lastgroup, m[m.lastgroup], m.start(m.lastgroup) > position))
            position = m.end()
        self.index = 0
        self.depth = 0  # brackets, bracketless functions and exponents open
        self.calls = 0  # function brackets open

    def peek(self, ahead: int = 0) -> str | None:
        """Return the text of a coming token, or None past the end."""
        index = self.index + ahead
        return self.tokens[index][1] if index < len(self.tokens) else None

    def take(self) -> tuple[str, str, bool]:
        """Consume and return the next token."""
        if self.index >= len(self.tokens):
            raise _Unreadable
        self.index += 1
        return self.tokens[self.index - 1]

    def read(self) -> _Node:
        """Read the whole expression."""
        node = self.sum()
        if self.index != len(self.tokens):
            raise _Unreadable
        return node

    def sum(self) -> _Node:
        """Read terms joined by + and -."""
        left = self.product()
        while (op := self.peek()) in ("+", "-"):
            self.take()
            right = self.product()
            if left.kind == "percent" or (right.kind == "percent" and left.kind != "one"):
                raise _Unreadable
            left = _Node(f"{left.text} {op} {right.at(_PRODUCT)}", _SUM)
        return left

    def product(self) -> _Node:
        """Read factors joined by *, /, // and modulo."""
        left = self.unary()
        while (op := self.peek()) in ("*", "/", "//", "%"):
            self.take()
            right = self.unary()
            left = _Node(f"{left.at(_PRODUCT)} {op} {right.at(_UNARY)}", _PRODUCT)
        return left

    def unary(self) -> _Node:
        """Read a signed power."""
        signs = ""
        while (sign := self.peek()) in ("-", "+"):
            self.take()
            signs += str(sign)
        node = self.power()
        if not signs:
            return node
        if "-" in signs and node.kind == "power":
            raise _Unreadable
        return _Node(signs + node.at(_UNARY), _UNARY, "percent" if node.kind == "percent" else "")

    def power(self) -> _Node:
        """Read a base and an optional exponent."""
        base = self.postfix()
        if self.peek() not in ("**", "^"):
            return base
        self.take()
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise _Unreadable
        exponent = self.unary()
        self.depth -= 1
        if exponent.kind in ("power", "factorial"):
            raise _Unreadable
        return _Node(f"{base.at(_ATOMIC)} ** {exponent.at(_UNARY)}", _POWER, "power")

    def postfix(self) -> _Node:
        """Read an operand and the postfix operators after it, left to right."""
        node = self.primary()
        while True:
            token = self.peek()
            if token == "%" and self.percent_sign():
                node = _Node(f"{node.at(_ATOMIC)}%", _ATOMIC, "percent")
            elif token in ("!", "factorial"):
                node = _Node(f"factorial({node.text})", _ATOMIC, "factorial")
            elif token is not None and token in _POSTFIX_POWERS:
                node = _Node(f"{node.at(_ATOMIC)} ** {_POSTFIX_POWERS[token]}", _POWER, "power")
            elif token == "of" and node.kind in ("percent", "fraction"):
                self.take()
                operand = self.operand(percent=True)  # "10% of 50%" is 5%
                return _Node(f"{node.text} * {operand.at(_UNARY)}", _PRODUCT)
            else:
                return node
            self.take()

    def percent_sign(self) -> bool:
        """Tell a percent sign from modulo at the next token, as the calculator does."""
        if self.index + 1 >= len(self.tokens):
            return True
        kind, text, spaced = self.tokens[self.index + 1]
        if kind in ("number", "ref") or text == "(":
            if spaced and not self.tokens[self.index][2]:  # "15% 80": a percent, or modulo?
                raise _Unreadable
            return False
        if kind == "name":
            return text in ("of", "factorial") or text in _POSTFIX_POWERS
        if text in ("+", "-"):  # "8% - 3" is a percent, "10 % -3" modulo
            return not self.tokens[self.index][2]
        return True

    def operand(self, *, percent: bool = False) -> _Node:
        """Read the single operand of "sqrt 16" or "10% of 50", ending the expression or bracket.

        With `percent`, the operand may be a percentage ("10% of 50%"); not for functions, as
        "sqrt 16%" may be sqrt(16%) or sqrt(16)%.
        """
        sign = str(self.take()[1]) if self.peek() in ("-", "+") else ""
        node = self.primary()
        if percent and self.peek() == "%" and self.percent_sign():
            self.take()
            node = _Node(f"{node.text}%", _ATOMIC, "percent")
        if self.peek() not in (None, ")", ","):
            raise _Unreadable
        return _Node(sign + node.text, _UNARY if sign else node.level)

    def primary(self) -> _Node:
        """Read a number, a step reference, a constant, a bracket or a function call."""
        kind, text, _ = self.take()
        if kind == "number":
            if self.calls and _AMBIGUOUS_GROUPING.search(text):
                raise _Unreadable
            return _Node(_GROUPING.sub("", text), _ATOMIC, "one" if text == "1" else "")
        if kind == "ref" or text in _CONSTANTS:
            return _Node(text, _ATOMIC)
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise _Unreadable
        if text == "(":
            node = self.bracket("")
        elif text in _FUNCTIONS and self.peek() == "(":
            self.take()
            node = self.bracket(text)
        elif text in _PREFIX_FUNCTIONS:
            node = _Node(f"{text}({self.operand().text})", _ATOMIC)
        else:
            raise _Unreadable
        self.depth -= 1
        return node

    def bracket(self, function: str) -> _Node:
        """Read after an opening bracket: an expression, or a function's arguments."""
        self.calls += bool(function)
        items = [self.sum()]
        while function and self.peek() == ",":
            self.take()
            items.append(self.sum())
        if self.take()[1] != ")":
            raise _Unreadable
        self.calls -= bool(function)
        inner = ", ".join(item.text for item in items)
        if function:
            return _Node(f"{function}({inner})", _ATOMIC)
        kind = "fraction" if _FRACTION.fullmatch(inner) else items[0].kind
        return _Node(f"({inner})", _ATOMIC, kind if kind in ("fraction", "percent") else "")


def _read(text: str) -> str | None:
    """Return `text` read by _Reader with its grouping explicit, or None if it is unreadable."""
    try:
        return _Reader(text).read().text
    except _Unreadable:
        return None


def _translate(text: str) -> str | None:
    """Turn words into operators ("nine times six" -> "9 * 6"); None if words are left over."""
    for pattern, repl in _WORD_OPERATORS:
        text = pattern.sub(repl, text)
    expression = _read(text)
    return expression if expression and _parses(expression) else None


def _normalise_math(clause: str, ctx: _Ctx) -> tuple[str, bool, bool]:
    """Lower-case a clause, drop question words, read number words.

    Returns:
        The normalised clause; whether it was a question; whether number words were joined by
        "and" ("one hundred and five").
    """
    text, asked = _ROOT_SIGN.sub(r" sqrt(\1) ", clause.lower()).translate(_MATH_CHARS), False
    while True:
        prefix = _QUESTION_PREFIX.match(text)
        stripped = _QUESTION_SUFFIX.sub("", text[prefix.end() :] if prefix else text).strip()
        if stripped == text:
            break
        asked, text = asked or (prefix is not None and prefix[0].strip() != "the"), stripped
    scale_and = _SCALE_AND.search(text) is not None
    text = _PERCENT_WORD.sub("%", _number_words(text))
    text = _THOUSANDS.sub(lambda m: m[0].replace(",", "_"), text)
    if ctx.last_calc is not None:
        text = _IT_CALC.sub(f"{{{{step_{ctx.last_calc}.result}}}}", text)
    return " ".join(text.split()), asked, scale_and


def _operand(text: str) -> str | None:
    """Return an operand ready for a template: atoms as typed, expressions in parentheses."""
    if re.fullmatch(_SIMPLE, text := text.strip()):
        text = text.replace(" ", "")
        return f"({text})" if text.startswith("-") else text  # so "-3 ** 2" cannot happen
    expression = _translate(text)
    return f"({expression})" if expression else None


def _items(text: str) -> list[str] | None:
    """Split "12, 30 and 48" into atoms; None unless it is a list of at least two.

    A comma inside a number is refused in a list: "1,5" may be 1.5 or 1 and 5, "100,200"
    100200 or 100 and 200 (but "1,000" is 1000: see _THOUSANDS).
    """
    if re.search(r"\d,\d", text) or _AMBIGUOUS_GROUPING.search(text):
        return None
    items = re.split(r"\s*,\s*(?:and\s+)?|\s+and\s+|\s*&\s*", text.strip())
    if len(items) < 2 or not all(re.fullmatch(_ATOM, item) for item in items):
        return None
    return [item.replace(" ", "") for item in items]


def _calculation(expression: str) -> _Draft | None:
    # The planner's own brackets hold no thousands grouping a person typed in a list: _items
    # refuses those, and _Reader those in a function's brackets.
    expression = _GROUPING.sub("", expression)
    if _read(expression) is None or not _parses(expression):
        return None
    shown = STEP_REFERENCE.sub(lambda m: f"(the result of step {m[1]})", expression)
    return _Draft("calculator", {"expression": expression}, f"calculate {shown}")


def _calc(template: str) -> _Builder:
    """Build a rule action that fills `template` with the match's operands.

    Groups named `items` and `factors` are lists ("12, 30 and 48"), joined by commas or by
    `*`; `op` is an operator, passed through; every other group is one operand. `{prev}` is
    the previous calculator step's result, and the rule does not apply without one. A
    percentage change of a percentage ("add 5% to 10%": 15% or 10.5%?) is refused.
    """

    def build(m: re.Match[str], ctx: _Ctx) -> _Draft | None:
        values = {"prev": f"{{{{step_{ctx.last_calc}.result}}}}"}
        if "{prev}" in template and ctx.last_calc is None:
            return None
        for name, raw in m.groupdict().items():
            if raw is None:
                continue
            value: str | None = raw
            if name in ("items", "factors"):
                items = _items(raw) or []
                percents = sum("%" in item for item in items)
                # "add 5 and 10%" may be 5.5 like "5 + 10%" (refused by _Reader), and a list
                # mixing percentages with numbers has no clear meaning.
                if (
                    name == "items"
                    and percents
                    and (template.startswith("sum") or percents < len(items))
                ):
                    return None
                value = (", " if name == "items" else " * ").join(items)
            elif name != "op":
                value = _operand(raw)
            if not value:
                return None
            values[name] = value
        if "{p}%" in template and "%" in values.get("a", ""):
            return None
        return _calculation(template.format(**values))

    return build


# Operands bounded by words on both sides ("increase {a} by ...") may be expressions; an operand
# that ends the clause (or starts it, before a postfix phrase such as "increased by") must be an
# atom: in "difference between 10 and 4 plus 1" or "20% off 100 plus 5" the grouping is open.
_A, _B, _N, _M = r"(?P<a>.+?)", r"(?P<b>.+?)", rf"(?P<a>{_ATOM})", rf"(?P<b>{_ATOM})"
_PLAIN_A, _PLAIN_B = rf"(?P<a>{_PLAIN})", rf"(?P<b>{_PLAIN})"
_P, _PCT = r"(?P<p>\d+(?:\.\d+)?)%", r"(?:per\s*cent(?:age)?|%)"
_UP, _UPPED = r"(?:raise|increase|grow|bump(?:\s+up)?|mark\s+up|inflate|up)", r"(?:increased|raised|marked\s+up|grown|inflated)"  # fmt: skip
_DOWN, _DOWNED = r"(?:decrease|reduce|lower|cut|drop|discount|mark\s+down|shrink|deflate)", r"(?:decreased|reduced|lowered|cut|discounted|marked\s+down|deflated)"  # fmt: skip

# Order matters: percentage changes before plain "add ... to", lists before "add 5" (which
# carries on from the previous result). Anything no rule reads goes to _translate.
# fmt: off
_CALC_TABLE: list[tuple[str, str]] = [
    ("{a} / {b} * 100", rf"what\s+{_PCT}\s+is\s+{_A}\s+(?:of|out\s+of)\s+{_M}"),
    ("{a} / {b} * 100", rf"{_A}\s+is\s+what\s+{_PCT}\s+of\s+{_M}"),
    ("{a} / {b} * 100", rf"(?:express\s+)?{_A}\s+as\s+an?\s+{_PCT}\s+of\s+{_M}"),
    ("{a} / {b} * 100", rf"{_N}\s+out\s+of\s+{_B}\s+(?:as|in)\s+an?\s+{_PCT}"),
    ("{b} / {a} * 100", rf"what\s+{_PCT}\s+of\s+{_A}\s+is\s+{_M}"),
    ("{a} * (1 + {p}%)", rf"{_UP}\s+{_A}\s+by\s+{_P}"),
    ("{a} * (1 + {p}%)", rf"{_N}\s+{_UPPED}\s+by\s+{_P}"),
    ("{a} * (1 + {p}%)", rf"add\s+{_P}\s+to\s+{_N}"),
    ("{a} * (1 + {p}%)", rf"{_P}\s+(?:more\s+than|on\s+top\s+of)\s+{_N}"),
    # "80 + 10%" is 88, as on a pocket calculator; only for exactly a number and a percentage
    # ("100 + 10% + 10%" and "5% + 5%" are refused by _Reader).
    ("{a} * (1 + {p}%)", rf"{_PLAIN_A}\s*(?:\+|plus|with)\s*{_P}"),
    ("{a} * (1 - {p}%)", rf"{_DOWN}\s+{_A}\s+by\s+{_P}"),
    ("{a} * (1 - {p}%)", rf"{_N}\s+{_DOWNED}\s+by\s+{_P}"),
    ("{a} * (1 - {p}%)", rf"(?:subtract|take|deduct)\s+{_P}\s+(?:off|from)\s+{_N}"),
    ("{a} * (1 - {p}%)", rf"{_P}\s+(?:off|less\s+than)\s+{_N}"),
    ("{a} * (1 - {p}%)", rf"{_PLAIN_A}\s*(?:-|minus|less)\s*{_P}"),
    ("{a} + {b}", rf"{_UP}\s+{_A}\s+by\s+{_PLAIN_B}"),
    ("{a} + {b}", rf"{_N}\s+{_UPPED}\s+by\s+{_PLAIN_B}"),
    ("{a} + {b}", rf"add\s+{_B}\s+to\s+{_N}"),
    ("{a} - {b}", rf"{_DOWN}\s+{_A}\s+by\s+{_PLAIN_B}"),
    ("{a} - {b}", rf"{_N}\s+{_DOWNED}\s+by\s+{_PLAIN_B}"),
    ("{a} - {b}", rf"(?:subtract|deduct)\s+{_B}\s+from\s+{_N}"),
    ("{a} - {b}", rf"take\s+(?:away\s+)?{_B}\s+(?:away\s+)?from\s+{_N}"),
    # "raise 50 to 60" more often means an increase: a power needs "power" or "the Nth".
    ("{a} ** {b}", rf"raise\s+{_A}\s+to\s+(?:the\s+)?power\s+(?:of\s+)?{_M}"),
    ("{a} ** {b}", rf"raise\s+{_A}\s+to\s+(?:the\s+)?{_M}(?:(?:st|nd|rd|th)(?:\s+power)?|\s+power)"),
    ("{a} ** 2", rf"square(?:\s+of)?\s+{_N}"),
    ("{a} ** 3", rf"cube(?:\s+of)?\s+{_N}"),
    ("{a} ** (1 / {n})", rf"(?P<n>\d+)(?:st|nd|rd|th)\s+root\s+of\s+{_N}"),
    ("{a} / 2", rf"(?:(?:a|1)\s+)?half\s+(?:of\s+)?{_N}"),
    ("{a} / 2", rf"halve\s+{_N}"),
    ("{a} / 2", rf"{_N}\s+(?:halved|divided\s+in\s+half)"),
    ("{a} * 2", rf"(?:double|twice)\s+{_N}"),
    ("{a} * 2", rf"{_N}\s+doubled"),
    ("{a} * 3", rf"(?:triple|treble|thrice)\s+{_N}"),
    ("{a} * 3", rf"{_N}\s+tripled"),
    ("{a} * 4", rf"quadruple\s+{_N}"),
    ("{a} * 4", rf"{_N}\s+quadrupled"),
    ("{a} / 3", rf"(?:a|1)\s+third\s+of\s+{_N}"),
    ("{a} / 4", rf"(?:a|1)\s+(?:quarter|fourth)\s+of\s+{_N}"),
    ("{n} / 3 * {a}", rf"(?P<n>\d+)\s+thirds\s+of\s+{_N}"),
    ("{n} / 4 * {a}", rf"(?P<n>\d+)\s+(?:quarters|fourths)\s+of\s+{_N}"),
    ("sum({items})", r"(?:sum|total)\s+of\s+(?P<items>.+)"),
    ("sum({items})", r"(?:add|sum|total)(?:\s+up|\s+together)?\s+(?P<items>.+?)(?:\s+together|\s+up)?"),
    ("sum({items})", r"(?P<items>.+?)\s+added\s+(?:together|up)"),
    ("{factors}", r"product\s+of\s+(?P<factors>.+)"),
    ("{factors}", r"multiply\s+(?P<factors>.+?)(?:\s+together)?"),
    ("{factors}", r"(?P<factors>.+?)\s+multiplied\s+together"),
    ("average({items})", r"(?:average|mean|arithmetic\s+mean)\s+(?:of\s+)?(?P<items>.+)"),
    ("median({items})", r"median\s+(?:of\s+)?(?P<items>.+)"),
    ("max({items})", r"(?:max|maximum|largest|biggest|greatest|highest)\s+(?:of\s+)?(?P<items>.+)"),
    ("min({items})", r"(?:min|minimum|smallest|lowest|least)\s+(?:of\s+)?(?P<items>.+)"),
    ("round({a}, {b})", rf"round\s+{_A}\s+to\s+{_M}\s+(?:decimal\s+places|decimals|places|dp|digits)"),
    ("round({a})", rf"round\s+{_A}\s+to\s+the\s+nearest\s+(?:whole\s+number|integer|one|unit)"),
    ("{a} * {b}", rf"multiply\s+{_A}\s+(?:by|with|and)\s+{_M}"),
    ("{a} / {b}", rf"divide\s+{_A}\s+by\s+{_M}"),
    ("{a} / {b}", rf"quotient\s+of\s+{_A}\s+(?:and|by)\s+{_M}"),
    ("abs({a} - {b})", rf"difference\s+(?:between|of)\s+{_A}\s+and\s+{_M}"),  # between 4 and 10 is 6
    ("{a} % {b}", rf"remainder\s+(?:of|when|after)\s+{_A}\s+(?:is\s+)?divided\s+by\s+{_M}"),
    ("{b} - {a}", rf"{_N}\s+(?:less|fewer)\s+than\s+{_M}"),
    ("{b} + {a}", rf"{_N}\s+more\s+than\s+{_M}"),
    # Carrying on from the previous result: "..., then add 5", "..., then divide by 2", and
    # "..., then add 10%", which is the pocket-calculator reading of "{prev} + 10%".
    ("{prev} * (1 + {p}%)", rf"(?:add|plus|\+)\s*{_P}"),
    ("{prev} * (1 - {p}%)", rf"(?:subtract|minus|take\s+away|deduct|-)\s*{_P}"),
    ("{prev} + {b}", rf"(?:add|plus)\s+{_M}"),
    ("{prev} - {b}", rf"(?:subtract|minus|take\s+away|deduct)\s+{_M}"),
    ("{prev} * {b}", rf"(?:multiply\s+(?:it\s+)?by|times)\s+{_M}"),
    ("{prev} / {b}", rf"divide\s+(?:it\s+)?by\s+{_M}"),
    ("{prev} {op} {b}", rf"(?P<op>\*\*|[-+*/^])\s*{_M}"),
]
# fmt: on
_CALC_RULES = [
    _Rule(
        re.compile(p),
        _calc(template),
        carries_on="{prev}" in template,
        lists=bool(re.search(r"\band\b|\?P<(?:items|factors)>", p)),
    )
    for template, p in _CALC_TABLE
]
# What starts a clause that carries on from the previous result ("then -5", "then times 2").
_LEADING_OPERATOR = re.compile(r"(?:[-+*/^%]|(?:minus|plus|times|multiplied|divided|over|mod|modulo)\b)")  # fmt: skip
_LIST_SEPARATOR = re.compile(r"\band\b|[,&]")
_BARE_PERCENT = re.compile(rf"[-+]?\s?{_NUMBER}%")


def _todo_rule(rule: _Rule, clause: str, polite: str, ctx: _Ctx) -> _Draft | None:
    """Plan a clause by one todo rule, keeping a filler word that ends the todo's text.

    `polite` is the clause without a last "please" or "thanks" after a plain space: that word
    is filler after the rule's own words ("add milk to my list please"), but may be the end of
    the todo's text ("remind me to say thank you"), where it is kept.
    """
    m, kept = rule.pattern.fullmatch(polite), False
    if m is not None and polite != clause:
        free = next((g for g in ("text", "target") if g in rule.pattern.groupindex), None)
        if free is not None and m.end(free) == len(polite):
            # The rule's text may not take the word at all ("what is todo 3 please").
            m, kept = rule.pattern.fullmatch(clause) or m, True
    if m is None or (draft := rule.build(m, ctx)) is None:
        return None
    kept = kept and _SOFT_FILLER.search(draft.tool_input.get("text") or "") is not None
    return replace(draft, loose=rule.loose or kept)


def _plan_clause(text: str, ctx: _Ctx) -> _Draft | None:
    """Plan one clause as exactly one step, or return None if no rule reads all of it."""
    if not (clause := _strip_filler(text)):
        return None
    polite = _strip_filler(clause, soft=True)
    for rule in _TODO_RULES:
        if (draft := _todo_rule(rule, clause, polite, ctx)) is not None:
            return draft
    return _plan_math(polite, ctx)


def _plan_math(clause: str, ctx: _Ctx) -> _Draft | None:
    """Plan a clause as one calculation, or return None if no calculator rule reads all of it.

    Refused besides what the rules and _Reader refuse:

    - A range of percentages ("10-15% of 200").
    - Number words joined by "and" where "and" also separates operands ("average of two
      hundred and fifty and three hundred": 250 and 300, or 200, 50 and 300?).
    - After "then", a clause starting with an operator is the previous result's operand
      ("then -5", "then times 2"), and nothing more ("then -5 + 2": is it -3?); nor is a bare
      percentage ("what is 200 then 10%": 10% of 200?).
    """
    math, asked, scale_and = _normalise_math(clause, ctx)
    if _percent_range(math):
        return None
    carry_on = ctx.step > 1 and _LEADING_OPERATOR.match(math) is not None
    scale_and = scale_and and _LIST_SEPARATOR.search(math) is not None
    for rule in _CALC_RULES:
        if (carry_on and not rule.carries_on) or (scale_and and rule.lists):
            continue
        if (m := rule.pattern.fullmatch(math)) and (draft := rule.build(m, ctx)):
            return draft
    if carry_on or (ctx.step > 1 and not asked and _BARE_PERCENT.fullmatch(math)):
        return None
    expression = _translate(math)
    # A bare number is only a calculation when asked for ("what is one million").
    if expression and (asked or _HAS_OPERATOR.search(expression)):
        return _calculation(expression)
    return None


def _percent_range(math: str) -> bool:
    """Tell whether "N-M%" is a range ("10-15%", "20-25% of 80"), not N minus M% ("100-10%")."""
    return any(m[3] or float(m[1]) < float(m[2]) for m in _RANGE.finditer(math))


# --- Splitting a request into clauses -----------------------------------------------------

_SEPARATOR = re.compile(
    r"(\s*[;,]?\s*\b(?:and\s+then|then|and\s+after\s+that|after\s+that|and\s+also)\b\s*,?\s*"
    r"|\s*;\s*|\s*,\s*also\b\s*|\s*,\s*and\s+|\s*,\s*|\s+and\s+)",
    re.I,
)
_STRONG = re.compile(r";|\bthen\b|\bafter\s+that\b|\balso\b", re.I)
# What starts a new request after "and" or ",": anything else stays in the clause before it.
_CUE = re.compile(
    r"(?:show|list|display|view|what|how|calculate|compute|work\s+out|add|remind|put|create|"
    r"new\s+(?:todo|task)|to-?do\s*:|task\s*:|mark|complete\s+(?:it|that|todo|task|item|#|\d)|"
    r"check\s+off|tick\s+off|cross\s+off|delete|remove|erase|get\s+rid|cancel|double|triple|"
    r"quadruple|halve|half\s+of|multiply|divide|subtract|take\s+away|square|cube|sqrt|raise|"
    r"increase|decrease|reduce|lower|i\s+need|i\s+have\s+to|don'?t\s+let|tell\s+me|give\s+me)\b",
    re.I,
)


class _Search:
    """Cut a request into clauses and find the reading with the most, each planned by a rule."""

    def __init__(self, text: str) -> None:
        """Cut `text` at each separator followed by a request word, and at every "then"."""
        raw = _SEPARATOR.split(text)
        self.pieces: list[str] = [raw[0]]
        self.seps: list[str] = []
        self.forced: list[bool] = []  # a "then" (";", ...) before a request word must split
        for sep, piece in zip(raw[1::2], raw[2::2], strict=True):
            cue = _CUE.match(_strip_filler(piece)) is not None
            strong = _STRONG.search(sep) is not None
            if cue or strong:
                self.pieces.append(piece)
                self.seps.append(sep)
                self.forced.append(cue and strong)
            else:  # "bread and milk", "12, 30 and 48": not a split point at all
                self.pieces[-1] += sep + piece
        # A clause's plan depends on its context (step number, what "it" is): both are keys.
        self._clause: dict[tuple[int, int, _Ctx], _Draft | None] = {}
        self._best: dict[tuple[int, _Ctx], list[_Draft] | None] = {}

    def ends(self, i: int) -> range:
        """Return the pieces a clause starting at piece i may end at: never past a forced split."""
        stop = next((k for k in range(i, len(self.seps)) if self.forced[k]), len(self.seps))
        return range(i, stop + 1)

    def clause(self, i: int, j: int, ctx: _Ctx) -> _Draft | None:
        """Plan pieces i to j (with their separators) as one clause."""
        if (i, j, ctx) not in self._clause:
            text = self.pieces[i] + "".join(self.seps[k] + self.pieces[k + 1] for k in range(i, j))
            joined = i > 0 and _STRONG.search(self.seps[i - 1]) is None
            self._clause[i, j, ctx] = _plan_clause(text, replace(ctx, joined=joined))
        return self._clause[i, j, ctx]

    def best(self, i: int, ctx: _Ctx) -> list[_Draft] | None:
        """Return the plan of pieces i onwards with the most clauses, or None if none exists."""
        if (i, ctx) not in self._best:
            found: list[_Draft] | None = None
            for j in self.ends(i):
                if (draft := self.clause(i, j, ctx)) is None:
                    continue
                rest = [] if j == len(self.pieces) - 1 else self.best(j + 1, ctx.after(draft))
                if rest is not None and (found is None or len(rest) + 1 > len(found)):
                    found = [draft, *rest]
            self._best[i, ctx] = found
        return self._best[i, ctx]

    def unread(self) -> list[str]:
        """Return the pieces no rule reads, taking the longest readable clause each time."""
        unknown, i, ctx = [], 0, _Ctx()
        while i < len(self.pieces):
            found = [(j, d) for j in self.ends(i) if (d := self.clause(i, j, ctx))]
            if found:
                ctx, i = ctx.after(found[-1][1]), found[-1][0] + 1
            else:
                unknown.append(self.pieces[i])
                i += 1
        return unknown


def _refusal(reason: str) -> PatternResult:
    return PatternResult(plan=None, reason=f"{reason} {_OFFLINE_HINT}", confident=False)


def _quote(text: str) -> str:
    text = " ".join(_strip_filler(text).strip(" ,;").split())
    return f'"{text[:77]}..."' if len(text) > 80 else f'"{text}"'


def _sentence(phrase: str) -> str:
    return phrase[:1].upper() + phrase[1:] + "."


def _plan(prompt: str) -> PatternResult:
    if len(prompt) > MAX_PROMPT_CHARS:
        return _refusal(
            f"That request is too long for me to read offline ({len(prompt):,} characters; "
            f"the limit is {MAX_PROMPT_CHARS:,})."
        )
    if not (text := _strip_filler(" ".join(_CONTROL.sub(" ", prompt).split()))):
        return _refusal("Please tell me what you would like me to do.")
    if "{{" in text or "}}" in text:
        return _refusal(
            'Sorry, I cannot plan a request containing "{{" or "}}": in a plan they mark '
            "references to earlier steps' results, so they would not be kept as you typed them."
        )
    search = _Search(text)
    if len(search.seps) > _MAX_SPLIT_POINTS:
        return _refusal(f"That is more than {MAX_PARTS} requests at once.")
    if (drafts := search.best(0, _Ctx())) is None:
        unread = [p for p in search.unread() if _has_content(p)] or [text]
        reason = f"Sorry, I could not understand {' or '.join(_quote(p) for p in unread)}."
        if any(_PLACE.search(p) and _TODO_WORD.search(p) for p in unread):
            reason += (
                ' I can pick a todo by its text or number (like "delete todo 2"), not by its '
                'place in the list (like "the second todo").'
            )
        elif any(_CHANGE.search(p) and _SEVERAL.search(p) for p in unread):
            reason += (
                " I can complete or delete one todo at a time, by its text or number (like "
                '"delete todo 2"), not several at once.'
            )
        return _refusal(reason)
    if len(drafts) > MAX_PARTS:
        return _refusal(f"That is {len(drafts)} requests at once; I can chain at most {MAX_PARTS}.")
    steps = [
        PlanStep(
            step_number=n,
            tool_name=d.tool_name,
            tool_input=d.tool_input,
            reasoning=_sentence(d.goal),
        )
        for n, d in enumerate(drafts, 1)
    ]
    goal = _sentence(", then ".join(d.goal for d in drafts))
    # Every candidate split used: no "then"/"and <request>" was swallowed by a todo text.
    confident = len(drafts) == len(search.seps) + 1 and not any(d.loose for d in drafts)
    return PatternResult(Plan(steps=steps, final_goal=goal), None, confident)


def plan_request(prompt: str) -> PatternResult:
    """Plan a calculator or todo request with rules alone, refusing what it cannot read in full.

    Args:
        prompt: The person's request: any string at all.

    Returns:
        A plan, or no plan and a reason for the person; `confident` is described on
        PatternResult. Never raises.
    """
    try:
        if not isinstance(prompt, str):
            return _refusal("I can only read text requests.")
        return _plan(prompt)
    except Exception:  # a rule bug must not take the graph down: refusing is always safe
        return _refusal("Sorry, something went wrong while reading that request.")
