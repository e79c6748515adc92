"""A safe calculator tool: arithmetic evaluated by walking a whitelisted AST, never `eval`.

The public contract: safe evaluation (no Python `eval`), bounded work (huge powers and
factorials are refused, not computed), clear errors (division by zero, syntax). It covers
arithmetic, percentages, powers, parentheses and the common functions people ask for.

How an expression is handled:

1. `_normalise` rewrites what people type into Python's arithmetic grammar: `×`, `÷`, `−`
   and `^` become `*`, `/`, `-` and `**`; Unicode digits (`٣`) become ASCII digits;
   thousands separators (`1,000,000`) are dropped outside function calls; a postfix
   percent (`8%`) becomes `(8/100)`.
2. `parse_expression` parses the result with `ast.parse(mode="eval")` and checks every node
   against a whitelist, the known names and the fixed arities. It never evaluates.
3. `evaluate` walks the checked tree, estimating the size of every power and factorial
   before computing it, and bounding every intermediate result.

Decisions worth knowing:

- Thousands separators are only recognised outside function calls: `2,500 * 3` is 7500, but
  `max(1,000)` is `max(1, 0)` because inside a call a comma separates arguments.
- `%` is a percent sign when nothing to operate on follows it (`8% * 50`, `(1+1)%`), and
  modulo when a number, name or `(` follows (`10 % 3`). Before `+` or `-` it is a percent
  sign when written right after its number (`8% - 3` is -2.92) and modulo when spaced from it
  (`10 % -3` is -2), so substituted negative numbers keep meaning modulo. `15% of 80` works.
- `round` rounds half away from zero on the decimal digits as written (`round(2.5)` is 3,
  `round(2.675, 2)` is 2.68), which is what people expect, not Python's banker's rounding.
- Results are rounded to 12 significant digits to hide binary noise (`0.1 + 0.2` is 0.3), and
  integral results below 10**15 are returned as `int`. Integer arithmetic stays exact while it
  runs (`factorial(50) / factorial(48)` is 2450), and integer results up to 2**63 - 1 are
  returned exactly; larger results come back as floats (`factorial(50)` is 3.04140932017e+64),
  since 64 bits is what checkpointers and most JSON readers carry, and results beyond the float
  range (about 1.8e308) are refused.
- Integers are bounded to 1000 digits, so the largest factorial is `factorial(449)`.
"""

from __future__ import annotations

import ast
import difflib
import math
import re
import sys
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Final, Literal, TypeAlias

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, ConfigDict, Field

from graph.errors import ToolError

__all__ = [
    "MAX_DIGITS",
    "MAX_EXPRESSION_LENGTH",
    "MAX_FACTORIAL",
    "MAX_NESTING",
    "MAX_NODES",
    "CalculatorError",
    "CalculatorInput",
    "calculator",
    "evaluate",
    "parse_expression",
]

Number: TypeAlias = int | float

Reason = Literal[
    "syntax",
    "division_by_zero",
    "too_large",
    "too_long",
    "unsupported",
    "domain",
    "empty",
    "unknown_name",
]
"""The short machine-readable codes a `CalculatorError` carries as `reason`."""

MAX_EXPRESSION_LENGTH: Final = 1000
"""Longest expression accepted, in characters; checked before any parsing."""

MAX_NODES: Final = 200
"""Most numbers, names, operators and calls one expression may contain."""

MAX_NESTING: Final = 50
"""Deepest nesting of brackets accepted."""

MAX_DIGITS: Final = 1000
"""Integers may have at most this many digits (magnitude up to 10**MAX_DIGITS)."""

MAX_FACTORIAL: Final = 449
"""The largest n whose factorial stays within MAX_DIGITS digits (449! < 10**1000 < 450!)."""

_MAX_INT: Final = 10**MAX_DIGITS
_FLOAT_MAX_LOG10: Final = math.log10(sys.float_info.max)
# Below this a power's result is smaller than the smallest float, so it is simply 0.0.
_FLOAT_MIN_LOG10: Final = -330.0
_INT_RESULT_LIMIT: Final = 10**15
_SIGNIFICANT_DIGITS: Final = 12
_QUOTE_LIMIT: Final = 80


class CalculatorError(ToolError):
    """Raised when the calculator refuses an expression or cannot evaluate it.

    `str(error)` is a full sentence for a person; `reason` is one of the `Reason` codes:
    ``syntax``, ``division_by_zero``, ``too_large``, ``too_long``, ``unsupported``,
    ``domain``, ``empty`` or ``unknown_name``.
    """

    def __init__(self, reason: Reason, message: str) -> None:
        """Create the error for the `calculator` tool with a reason code and a message."""
        super().__init__("calculator", reason, message)


class CalculatorInput(BaseModel):
    """The calculator tool's input: one arithmetic expression."""

    model_config = ConfigDict(extra="forbid")

    expression: str = Field(
        description=(
            "One arithmetic expression, e.g. '(2 + 3) * 4', '15% * 80', '2^10', "
            "'sqrt(16) + abs(-3)', 'average(45, 67, 23)'. Operators: + - * / // % ** (^ also "
            "means power); N% means N/100. Functions: sqrt, cbrt, abs, round, floor, ceil, "
            "min, max, sum, average (mean, avg), median, factorial, log, ln, log10, log2, exp, "
            "pow. Constants: pi, e, tau. No variables, text or units."
        )
    )


# ---------------------------------------------------------------------------------------------
# Normalisation: from what people type to Python's arithmetic grammar.
# ---------------------------------------------------------------------------------------------

_CHARACTER_MAP: Final = {
    "×": "*",
    "⋅": "*",
    "·": "*",
    "∙": "*",
    "÷": "/",
    "−": "-",
}

_Token: TypeAlias = tuple[str, str]
"""A lexer token: (kind, text), kind being space, number, name or op."""

_TOKEN_RE: Final = re.compile(
    r"""
    (?P<space>\s+)
    | (?P<number>
        0[xXoObB][0-9a-fA-F_]+
        | (?:[0-9][0-9_]*(?:\.[0-9_]*)? | \.[0-9][0-9_]*) (?:[eE][+-]?[0-9][0-9_]*)? [jJ]?
      )
    | (?P<name>[^\W\d]\w*)
    | (?P<op>\*\*|//|.)
    """,
    re.VERBOSE | re.DOTALL,
)

# 1,000 or 12,345,678.5 - but not 1,0000 or 1,000,00, which are not thousands groupings.
_GROUPED_NUMBER_RE: Final = re.compile(
    r"[0-9]{1,3}(?:,[0-9]{3})+(?![0-9_]|,[0-9])(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
)


def _quote(expression: str) -> str:
    """Quote an expression for a message, shortened so a message stays readable."""
    if len(expression) > _QUOTE_LIMIT:
        expression = expression[: _QUOTE_LIMIT - 3] + "..."
    return f"'{expression}'"


def _translate_characters(text: str) -> str:
    """Map typographic operators, Unicode whitespace and Unicode digits to ASCII."""
    out: list[str] = []
    for char in text:
        if char.isspace():
            # Python's tokenizer rejects e.g. a no-break space, and a newline ends the expression.
            out.append(" ")
        elif char.isascii():
            out.append(char)
        elif char in _CHARACTER_MAP:
            out.append(_CHARACTER_MAP[char])
        elif unicodedata.category(char) == "Nd":
            out.append(str(unicodedata.decimal(char)))
        else:
            out.append(char)
    return "".join(out)


def _tokenize(text: str, original: str) -> list[_Token]:
    """Split `text` into tokens, joining thousands-grouped numbers outside function calls."""
    tokens: list[_Token] = []
    brackets: list[bool] = []  # one entry per open bracket: does it hold call arguments?
    open_calls = 0
    previous: _Token | None = None  # the last token that is not whitespace
    position = 0
    while position < len(text):
        if open_calls == 0:
            grouped = _GROUPED_NUMBER_RE.match(text, position)
            if grouped:
                previous = ("number", grouped.group().replace(",", ""))
                tokens.append(previous)
                position = grouped.end()
                continue
        match = _TOKEN_RE.match(text, position)
        assert match is not None and match.lastgroup is not None  # `.` matches any character
        token = (match.lastgroup, match.group())
        position = match.end()
        tokens.append(token)
        if token[0] == "space":
            continue
        kind, value = token
        if value in ("(", "[", "{"):
            # `f(` and `[` hold comma-separated arguments; `2(` and `)(` would be calls too.
            holds_arguments = value == "[" or (
                value == "("
                and previous is not None
                and (previous[0] in ("name", "number") or previous[1] in (")", "]"))
            )
            brackets.append(holds_arguments)
            open_calls += holds_arguments
            if len(brackets) > MAX_NESTING:
                raise CalculatorError(
                    "too_long",
                    f"The expression {_quote(original)} nests brackets more than "
                    f"{MAX_NESTING} levels deep, which is more than the calculator accepts.",
                )
        elif value in (")", "]", "}") and brackets:
            open_calls -= brackets.pop()
        previous = token
    return tokens


def _next_significant(tokens: Sequence[_Token], start: int) -> int | None:
    """Return the index of the first non-space token at or after `start`, if any."""
    for index in range(start, len(tokens)):
        if tokens[index][0] != "space":
            return index
    return None


def _atom_start(tokens: Sequence[_Token]) -> int | None:
    """Return where the operand ending `tokens` starts: a number, a name or a bracketed group."""
    end = next((i for i in range(len(tokens) - 1, -1, -1) if tokens[i][0] != "space"), None)
    if end is None:
        return None
    kind, value = tokens[end]
    if kind in ("number", "name"):
        return end
    closers = {")": "(", "]": "["}
    if value not in closers:
        return None
    depth = 0
    for index in range(end, -1, -1):
        text = tokens[index][1]
        if text == value:
            depth += 1
        elif text == closers[value]:
            depth -= 1
            if depth == 0:
                before = next(
                    (i for i in range(index - 1, -1, -1) if tokens[i][0] != "space"), None
                )
                # Include the function name, so `sqrt(16)%` is a percent of the whole call.
                if before is not None and tokens[before][0] == "name":
                    return before
                return index
    return None


def _is_percent(tokens: Sequence[_Token], index: int) -> bool:
    """Decide whether the `%` at `index` is a postfix percent sign rather than modulo."""
    following = _next_significant(tokens, index + 1)
    if following is None:
        return True
    kind, value = tokens[following]
    if kind == "number" or (kind == "name" and value.lower() != "of") or value in ("(", "["):
        return False
    if value in ("+", "-"):
        # `8% - 3` (percent, attached to its number) versus `10 % -3` (modulo, spaced).
        return index > 0 and tokens[index - 1][0] != "space"
    return True


def _rewrite_operators(tokens: Sequence[_Token]) -> list[_Token]:
    """Turn `^` into `**`, a postfix `N%` into `(N/100)` and the `of` after a percent into `*`."""
    out: list[_Token] = []
    after_percent = False
    for index, token in enumerate(tokens):
        kind, value = token
        if kind == "space":
            out.append(token)
            continue
        if after_percent:
            after_percent = False
            if kind == "name" and value.lower() == "of":
                out.append(("op", "*"))
                continue
        if value == "^":
            out.append(("op", "**"))
        elif (
            value == "%" and _is_percent(tokens, index) and (start := _atom_start(out)) is not None
        ):
            # Parenthesised so the percent binds tightest: `10 / 4%` is 10 / 0.04.
            out.insert(start, ("op", "("))
            out.extend([("op", "/"), ("number", "100"), ("op", ")")])
            after_percent = True
        else:
            out.append(token)
    return out


def _normalise(expression: str) -> str:
    """Rewrite a stripped, non-empty expression into Python's arithmetic grammar."""
    text = _translate_characters(expression)
    tokens = _rewrite_operators(_tokenize(text, expression))
    return "".join(value for _, value in tokens)


# ---------------------------------------------------------------------------------------------
# Static checking: only whitelisted nodes, known names and correct arities.
# ---------------------------------------------------------------------------------------------

_CONSTANTS: Final[dict[str, float]] = {
    "pi": math.pi,
    "π": math.pi,
    "e": math.e,
    "tau": math.tau,
    "τ": math.tau,
}

_BINARY_OPERATORS: Final[dict[type[ast.operator], str]] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
}

_UNSUPPORTED_OPERATORS: Final[dict[type[ast.AST], str]] = {
    ast.BitAnd: "the operator '&'",
    ast.BitOr: "the operator '|'",
    ast.BitXor: "the operator '^' as exclusive or",
    ast.LShift: "the operator '<<'",
    ast.RShift: "the operator '>>'",
    ast.MatMult: "the operator '@'",
    ast.Not: "'not'",
    ast.Invert: "the operator '~'",
}

_UNSUPPORTED_NODES: Final[dict[type[ast.AST], str]] = {
    ast.Attribute: "attribute access with '.'",
    ast.Subscript: "indexing with [...]",
    ast.Slice: "slicing",
    ast.Lambda: "a lambda function",
    ast.ListComp: "a comprehension",
    ast.SetComp: "a comprehension",
    ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a generator expression",
    ast.Compare: "a comparison",
    ast.BoolOp: "'and' or 'or'",
    ast.IfExp: "a conditional expression (... if ... else ...)",
    ast.NamedExpr: "an assignment with ':='",
    ast.Dict: "a dictionary",
    ast.Set: "a set",
    ast.JoinedStr: "an f-string",
    ast.FormattedValue: "an f-string",
    ast.Starred: "unpacking with '*'",
    ast.Await: "'await'",
    ast.Yield: "'yield'",
    ast.YieldFrom: "'yield'",
}


def _unsupported(expression: str, what: str) -> CalculatorError:
    """Build the error for an expression that uses something the calculator does not do."""
    return CalculatorError(
        "unsupported",
        f"The expression {_quote(expression)} uses {what}, which the calculator does not "
        "support; it only does arithmetic on numbers with its own functions.",
    )


def _describe_constant(value: object) -> str:
    """Name a literal that is not a plain number, for an error message."""
    if isinstance(value, bool):
        return "True or False"
    if isinstance(value, str):
        return "text (a string literal)"
    if isinstance(value, bytes):
        return "a bytes literal"
    if isinstance(value, complex):
        return "a complex number"
    if value is None:
        return "None"
    return "a literal that is not a number"


def _check_constant(node: ast.Constant, expression: str) -> None:
    """Accept only finite int and float literals within the size bound."""
    value = node.value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _unsupported(expression, _describe_constant(value))
    if isinstance(value, float) and not math.isfinite(value):
        raise CalculatorError(
            "too_large",
            f"A number in {_quote(expression)} is too large to represent as a decimal number.",
        )
    if isinstance(value, int) and abs(value) > _MAX_INT:
        raise CalculatorError(
            "too_large",
            f"A number in {_quote(expression)} has more than {MAX_DIGITS} digits, which is more "
            "than the calculator handles.",
        )


def _unknown_name(name: str, expression: str) -> CalculatorError:
    """Build the error for a name that is neither a known constant nor a known function."""
    known = sorted({*_FUNCTIONS, "pi", "e", "tau"})
    close = difflib.get_close_matches(name.lower(), known, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return CalculatorError(
        "unknown_name",
        f"The expression {_quote(expression)} uses the unknown name '{name}'. The calculator "
        f"knows the constants pi, e and tau and the functions {', '.join(sorted(_FUNCTIONS))}."
        f"{hint}",
    )


def _check_name(node: ast.Name, expression: str) -> None:
    """Accept only the known constants as bare names."""
    key = node.id.lower()
    if key in _CONSTANTS:
        return
    if key in _FUNCTIONS:
        raise CalculatorError(
            "syntax",
            f"In {_quote(expression)}, '{node.id}' is a function: call it with parentheses, "
            f"e.g. {_FUNCTIONS[key].usage}.",
        )
    raise _unknown_name(node.id, expression)


def _plural(count: int, noun: str) -> str:
    """Return e.g. '1 argument' or '2 arguments'."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _check_call(node: ast.Call, expression: str) -> None:
    """Accept only calls of known functions by name, with positional arguments of the right count."""
    if not isinstance(node.func, ast.Name):
        if isinstance(node.func, ast.Constant):
            raise _unsupported(
                expression,
                "a number followed by '(' (write the multiplication explicitly, as in 2*(3+4))",
            )
        what = _UNSUPPORTED_NODES.get(type(node.func), "a call of something that is not a name")
        raise _unsupported(expression, what)
    name = node.func.id
    key = name.lower()
    if key not in _FUNCTIONS:
        if key in _CONSTANTS:
            raise CalculatorError(
                "syntax",
                f"In {_quote(expression)}, '{name}' is a constant, not a function; to multiply, "
                f"write '*', e.g. {name}*(2+3).",
            )
        raise _unknown_name(name, expression)
    function = _FUNCTIONS[key]
    if node.keywords:
        raise _unsupported(
            expression,
            f"keyword arguments (pass values by position instead, e.g. {function.usage})",
        )
    count = 0
    for argument in node.args:
        if isinstance(argument, (ast.List, ast.Tuple)):
            if function.max_args is not None:
                raise CalculatorError(
                    "syntax",
                    f"In {_quote(expression)}, {name}() takes separate numbers, not a list: "
                    f"write {function.usage}.",
                )
            for element in argument.elts:
                if isinstance(element, (ast.List, ast.Tuple)):
                    raise _unsupported(expression, "a list inside a list")
                _check_node(element, expression)
            count += len(argument.elts)
        else:
            _check_node(argument, expression)
            count += 1
    if count < function.min_args or (function.max_args is not None and count > function.max_args):
        if function.max_args is None:
            expected = f"at least {_plural(function.min_args, 'number')}"
        elif function.min_args == function.max_args:
            expected = f"exactly {_plural(function.min_args, 'argument')}"
        else:
            expected = f"{function.min_args} or {_plural(function.max_args, 'argument')}"
        raise CalculatorError(
            "syntax",
            f"In {_quote(expression)}, {name}() takes {expected} but was given {count}; "
            f"use it like {function.usage}.",
        )


def _check_node(node: ast.expr, expression: str) -> None:
    """Raise `CalculatorError` unless `node` and its children are all on the whitelist."""
    if isinstance(node, ast.Constant):
        _check_constant(node, expression)
    elif isinstance(node, ast.Name):
        _check_name(node, expression)
    elif isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, (ast.UAdd, ast.USub)):
            raise _unsupported(expression, _UNSUPPORTED_OPERATORS.get(type(node.op), "an operator"))
        _check_node(node.operand, expression)
    elif isinstance(node, ast.BinOp):
        if type(node.op) not in _BINARY_OPERATORS:
            raise _unsupported(expression, _UNSUPPORTED_OPERATORS.get(type(node.op), "an operator"))
        _check_node(node.left, expression)
        _check_node(node.right, expression)
    elif isinstance(node, ast.Call):
        _check_call(node, expression)
    elif isinstance(node, ast.Tuple):
        raise CalculatorError(
            "syntax",
            f"Could not understand the expression {_quote(expression)}: a comma may only "
            "separate a function's arguments, as in max(1, 2), and thousands separators are "
            "only understood outside function calls (write 1000, not 1,000, inside them).",
        )
    elif isinstance(node, ast.List):
        raise _unsupported(
            expression, "a list outside a function call (lists go inside, e.g. average([1, 2]))"
        )
    else:
        raise _unsupported(expression, _UNSUPPORTED_NODES.get(type(node), "a Python construct"))


def _syntax_message(error: SyntaxError) -> str:
    """Turn a parser message into the end of a sentence for a person."""
    message = (error.msg or "invalid syntax").rstrip(".")
    if message.startswith("invalid syntax"):
        # Python's hints ("Perhaps you forgot a comma?") mislead about arithmetic.
        return "invalid syntax"
    if message == "invalid decimal literal":
        return "a number runs into a name; write multiplication explicitly, as in 2*pi"
    if message == "too many nested parentheses":
        return "too many nested brackets"
    if "null bytes" in message:
        return "it contains a null character"
    return message


def parse_expression(expression: str) -> ast.Expression:
    """Normalise, parse and statically check an expression without evaluating it.

    Used by `evaluate` and by the plan validator, which must reject a bad expression before
    running anything. An expression that is well formed but too big to compute, like
    `9**9**9**9`, passes here and is refused by `evaluate`.

    Args:
        expression: the expression as a person or an LLM wrote it.

    Returns:
        The parsed tree of the normalised expression, containing only whitelisted nodes.

    Raises:
        CalculatorError: reason ``empty``, ``too_long``, ``syntax``, ``unsupported``,
            ``unknown_name`` or ``too_large`` (a literal beyond the bounds).
    """
    if not isinstance(expression, str):
        raise CalculatorError(
            "syntax",
            f"The expression must be text such as '2 + 2', not {type(expression).__name__}.",
        )
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise CalculatorError(
            "too_long",
            f"The expression is {len(expression)} characters long; the calculator accepts at "
            f"most {MAX_EXPRESSION_LENGTH}.",
        )
    stripped = expression.strip()
    if not stripped:
        raise CalculatorError("empty", "The expression is empty; give an expression like '2 + 2'.")
    source = _normalise(stripped)
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise CalculatorError(
            "syntax",
            f"Could not understand the expression {_quote(stripped)}: {_syntax_message(exc)}.",
        ) from exc
    except ValueError as exc:  # Python < 3.12 reports a null character this way
        raise CalculatorError(
            "syntax",
            f"Could not understand the expression {_quote(stripped)}: it contains a null "
            "character.",
        ) from exc
    except (RecursionError, MemoryError) as exc:
        raise CalculatorError(
            "too_long", f"The expression {_quote(stripped)} is too complex to read."
        ) from exc
    size = sum(isinstance(node, ast.expr) for node in ast.walk(tree))
    if size > MAX_NODES:
        raise CalculatorError(
            "too_long",
            f"The expression {_quote(stripped)} is too complex: it has {size} parts, more than "
            f"the {MAX_NODES} the calculator accepts.",
        )
    _check_node(tree.body, stripped)
    return tree


# ---------------------------------------------------------------------------------------------
# Evaluation with bounded work.
# ---------------------------------------------------------------------------------------------


def _fmt(value: Number) -> str:
    """Format a number for a message, describing huge integers instead of printing them."""
    if isinstance(value, int) and abs(value) >= 10**30:
        return f"a number with about {int(value.bit_length() * math.log10(2)) + 1} digits"
    if isinstance(value, float):
        return f"{value:.{_SIGNIFICANT_DIGITS}g}"
    return str(value)


def _too_large(what: str) -> CalculatorError:
    """Build the error for a result beyond the calculator's bounds."""
    return CalculatorError("too_large", f"{what} is too large for the calculator to compute.")


def _bounded(value: Number) -> Number:
    """Return `value` if it is within bounds, so no later step works on a runaway number."""
    if isinstance(value, float):
        if math.isnan(value):
            raise CalculatorError("domain", "The result is not a real number.")
        if math.isinf(value):
            raise CalculatorError(
                "too_large", "The result is too large to represent as a decimal number."
            )
    elif abs(value) > _MAX_INT:
        raise CalculatorError(
            "too_large",
            f"The result has more than {MAX_DIGITS} digits, which is more than the calculator "
            "handles.",
        )
    return value


def _whole(value: Number, message: str) -> int:
    """Return `value` as an int if it is a whole number, else raise a domain error."""
    if isinstance(value, int):
        return value
    if value.is_integer():
        return int(value)
    raise CalculatorError("domain", message)


def _divide(dividend: Number, divisor: Number) -> Number:
    """Divide, keeping exact integers exact (`factorial(50) / factorial(48)` is an int)."""
    if (
        isinstance(dividend, int)
        and isinstance(divisor, int)
        and divisor
        and not dividend % divisor
    ):
        return dividend // divisor
    return dividend / divisor


def _log10_magnitude(base: Number, exponent: Number) -> float:
    """Estimate log10(|base ** exponent|) without computing the power; |base| is not 0 or 1."""
    log_base = math.log10(abs(base))
    try:
        return float(exponent) * log_base
    except OverflowError:  # an integer exponent too large for a float
        return (math.inf if exponent > 0 else -math.inf) * math.copysign(1.0, log_base)


def _power(base: Number, exponent: Number) -> Number:
    """Compute `base ** exponent`, refusing results too large before computing them."""
    if base == 0:
        if exponent < 0:
            raise CalculatorError(
                "division_by_zero",
                "Division by zero is undefined: zero cannot be raised to a negative power.",
            )
        return 1 if exponent == 0 else 0
    if isinstance(exponent, float) and base < 0 and not exponent.is_integer():
        raise CalculatorError(
            "domain",
            f"A negative number ({_fmt(base)}) raised to a fractional power ({_fmt(exponent)}) "
            "is not a real number; for a cube root use cbrt().",
        )
    if abs(base) == 1:
        # Python would walk every bit of a huge exponent; the answer only depends on parity.
        odd = base < 0 and exponent % 2 == 1
        one = -1 if odd else 1
        return one if isinstance(base, int) and isinstance(exponent, int) else float(one)
    magnitude = _log10_magnitude(base, exponent)
    exact = isinstance(base, int) and isinstance(exponent, int)
    limit = MAX_DIGITS if exact and exponent >= 0 else _FLOAT_MAX_LOG10
    if magnitude > limit:
        digits = "astronomically many" if magnitude > 1e15 else f"about {int(magnitude) + 1}"
        bound = f"{MAX_DIGITS} for whole numbers" if exact else "308 for decimal numbers"
        raise CalculatorError(
            "too_large",
            f"{_fmt(base)} ** {_fmt(exponent)} is too large to compute: the result would have "
            f"{digits} digits, and the calculator's limit is {bound}.",
        )
    if magnitude < _FLOAT_MIN_LOG10:
        return 0.0
    if isinstance(base, int) and isinstance(exponent, int):
        return base**exponent if exponent >= 0 else _divide(1, base**-exponent)
    return math.pow(base, exponent)


def _positive(name: str, value: Number) -> Number:
    """Return `value` if a logarithm of it is defined, else raise a domain error."""
    if value <= 0:
        raise CalculatorError(
            "domain",
            f"{name}({_fmt(value)}) is undefined: logarithms are only defined for positive numbers.",
        )
    return value


def _sqrt(args: Sequence[Number]) -> Number:
    """Square root, exact for perfect-square integers."""
    (value,) = args
    if value < 0:
        raise CalculatorError(
            "domain",
            f"The square root of a negative number ({_fmt(value)}) is not a real number.",
        )
    if isinstance(value, int):
        root = math.isqrt(value)
        if root * root == value:
            return root
    return math.sqrt(value)


def _round(args: Sequence[Number]) -> Number:
    """Round half away from zero on the decimal digits as written."""
    value = args[0]
    places = 0
    if len(args) == 2:
        places = _whole(args[1], "round() needs a whole number of decimal places.")
    if abs(places) > MAX_DIGITS:
        raise CalculatorError(
            "domain", f"round() accepts between -{MAX_DIGITS} and {MAX_DIGITS} decimal places."
        )
    if isinstance(value, int) and places >= 0:
        return value
    # repr() gives the shortest decimal that round-trips, so 2.675 rounds as written.
    decimal = Decimal(value) if isinstance(value, int) else Decimal(repr(value))
    with localcontext() as context:
        context.prec = 3 * MAX_DIGITS  # room for every digit of any bounded value
        rounded = decimal.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return int(rounded) if places <= 0 else float(rounded)


def _factorial(args: Sequence[Number]) -> Number:
    """Factorial of a whole number from 0 to MAX_FACTORIAL."""
    (value,) = args
    message = f"factorial({_fmt(value)}) is undefined: factorial needs a whole number of 0 or more."
    n = _whole(value, message)
    if n < 0:
        raise CalculatorError("domain", message)
    if n > MAX_FACTORIAL:
        raise CalculatorError(
            "too_large",
            f"factorial({_fmt(n)}) is too large to compute: it has more than {MAX_DIGITS} digits "
            f"(the largest the calculator computes is factorial({MAX_FACTORIAL})).",
        )
    return math.factorial(n)


def _log(args: Sequence[Number]) -> Number:
    """Logarithm to base 10, or to the base given second."""
    value = _positive("log", args[0])
    if len(args) == 1:
        # Base 10, as on pocket calculators and in everyday use ("log 100" is 2); ln is natural.
        return math.log10(value)
    base = args[1]
    if base <= 0 or base == 1:
        raise CalculatorError(
            "domain",
            f"log({_fmt(value)}, {_fmt(base)}) is undefined: the base must be positive and not 1.",
        )
    return math.log(value, base)


def _exp(args: Sequence[Number]) -> Number:
    """Return e ** x; the caller turns an overflow into a refusal."""
    (value,) = args
    return 0.0 if value < -1000 else math.exp(value)


def _sum(args: Sequence[Number]) -> Number:
    """Sum exactly for integers and with compensated summation for floats."""
    if all(isinstance(arg, int) for arg in args):
        return sum(args)
    return math.fsum(args)


def _average(args: Sequence[Number]) -> Number:
    """Arithmetic mean."""
    return _divide(_sum(args), len(args))


def _median(args: Sequence[Number]) -> Number:
    """Median: the middle value, or the mean of the two middle values."""
    ordered = sorted(args)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return _divide(ordered[middle - 1] + ordered[middle], 2)


@dataclass(frozen=True)
class _Function:
    """A calculator function: its implementation, arity and a usage example for messages."""

    impl: Callable[[Sequence[Number]], Number]
    min_args: int
    max_args: int | None  # None: variadic, and lists of numbers are accepted too
    usage: str


def _unary(function: Callable[[Number], Number], usage: str) -> _Function:
    """Wrap a one-argument function."""
    return _Function(lambda args: function(args[0]), 1, 1, usage)


def _variadic(function: Callable[[Sequence[Number]], Number], usage: str) -> _Function:
    """Wrap a function of one or more numbers, given separately or as a list."""
    return _Function(function, 1, None, usage)


_FUNCTIONS: Final[dict[str, _Function]] = {
    "sqrt": _Function(_sqrt, 1, 1, "sqrt(16)"),
    "cbrt": _unary(math.cbrt, "cbrt(27)"),
    "abs": _unary(abs, "abs(-3)"),
    "round": _Function(_round, 1, 2, "round(3.14159, 2)"),
    "floor": _unary(math.floor, "floor(2.7)"),
    "ceil": _unary(math.ceil, "ceil(2.1)"),
    "min": _variadic(min, "min(3, 1, 2)"),
    "max": _variadic(max, "max(3, 1, 2)"),
    "sum": _variadic(_sum, "sum(1, 2, 3)"),
    "average": _variadic(_average, "average(1, 2, 3)"),
    "mean": _variadic(_average, "mean(1, 2, 3)"),
    "avg": _variadic(_average, "avg(1, 2, 3)"),
    "median": _variadic(_median, "median(3, 1, 2)"),
    "factorial": _Function(_factorial, 1, 1, "factorial(5)"),
    "log": _Function(_log, 1, 2, "log(100, 10)"),
    "ln": _unary(lambda x: math.log(_positive("ln", x)), "ln(e)"),
    "log10": _unary(lambda x: math.log10(_positive("log10", x)), "log10(1000)"),
    "log2": _unary(lambda x: math.log2(_positive("log2", x)), "log2(8)"),
    "exp": _Function(_exp, 1, 1, "exp(1)"),
    "pow": _Function(lambda args: _power(args[0], args[1]), 2, 2, "pow(2, 10)"),
}

FUNCTION_NAMES: Final = frozenset(_FUNCTIONS)
"""Names of the functions an expression may call."""

_OPERATOR_FUNCTIONS: Final[dict[type[ast.operator], Callable[[Number, Number], Number]]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: _divide,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b,
    ast.Pow: _power,
}


def _evaluate_node(node: ast.expr) -> Number:
    """Evaluate a node that `parse_expression` has already checked."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, ast.Name):
        return _CONSTANTS[node.id.lower()]
    if isinstance(node, ast.UnaryOp):
        operand = _evaluate_node(node.operand)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp):
        left, right = _evaluate_node(node.left), _evaluate_node(node.right)
        symbol = _BINARY_OPERATORS[type(node.op)]
        try:
            return _bounded(_OPERATOR_FUNCTIONS[type(node.op)](left, right))
        except ZeroDivisionError:
            raise CalculatorError(
                "division_by_zero",
                f"Division by zero is undefined ({_fmt(left)} {symbol} {_fmt(right)}).",
            ) from None
        except OverflowError:
            raise _too_large(f"The result of {_fmt(left)} {symbol} {_fmt(right)}") from None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        args: list[Number] = []
        for argument in node.args:
            if isinstance(argument, (ast.List, ast.Tuple)):
                args.extend(_evaluate_node(element) for element in argument.elts)
            else:
                args.append(_evaluate_node(argument))
        name = node.func.id
        call = f"{name}({', '.join(map(_fmt, args)) if len(args) <= 3 else '...'})"
        try:
            return _bounded(_FUNCTIONS[name.lower()].impl(args))
        except ZeroDivisionError:
            raise CalculatorError(
                "division_by_zero", f"Division by zero is undefined (in {call})."
            ) from None
        except OverflowError:
            raise _too_large(f"The result of {call}") from None
        except ValueError:
            raise CalculatorError(
                "domain", f"{call} is undefined: the value is outside the function's domain."
            ) from None
    # parse_expression lets nothing else through; this guards against a future gap.
    raise CalculatorError(
        "unsupported", "The expression contains something the calculator cannot do."
    )


_MAX_EXACT_RESULT: Final = 2**63 - 1
"""Integer results up to this are returned exactly; larger ones as floats."""


def _finish(value: Number) -> Number:
    """Hide binary noise, return integral results below 10**15 as int, huge ints as floats."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        if abs(value) <= _MAX_EXACT_RESULT:
            return value
        # Beyond 64 bits an int cannot be checkpointed (msgpack) nor read exactly by most JSON
        # consumers, so it is returned as a float, as a pocket calculator would show it.
        try:
            value = float(value)
        except OverflowError:
            raise CalculatorError(
                "too_large", "The result is too large to return (the limit is about 1.8e308)."
            ) from None
    rounded = float(f"{value:.{_SIGNIFICANT_DIGITS}g}")
    if rounded.is_integer() and abs(rounded) < _INT_RESULT_LIMIT:
        return int(rounded)
    return rounded


def evaluate(expression: str) -> int | float:
    """Evaluate an arithmetic expression safely, with bounded work.

    Args:
        expression: e.g. ``"(2 + 3) * 4"``, ``"15% of 80"``, ``"sqrt(16) + 2^3"``.

    Returns:
        The value: an int when it is integral (and below 10**15 if computed with decimals),
        otherwise a float rounded to 12 significant digits.

    Raises:
        CalculatorError: with a `reason` code and a sentence for a person.
    """
    tree = parse_expression(expression)
    try:
        return _finish(_bounded(_evaluate_node(tree.body)))
    except RecursionError as exc:  # unreachable within MAX_NODES; kept as a last guard
        raise CalculatorError("too_long", "The expression is too complex to evaluate.") from exc


# ---------------------------------------------------------------------------------------------
# The LangChain tool.
# ---------------------------------------------------------------------------------------------

_TOOL_DESCRIPTION: Final = """\
Evaluate one arithmetic expression exactly and safely; returns a number.
Grammar: numbers (3, 2.5, 1e6, 1_000; 1,000 outside function calls), parentheses, + - * / \
// (floor division) % (modulo) ** or ^ (power, right-associative). N% means N/100: \
'15% * 80' and '15% of 80' are 12, '(1+1)%' is 0.02, while '10 % 3' is 1.
Functions: sqrt, cbrt, abs, round(x) or round(x, places), floor, ceil, factorial (whole \
numbers 0..449), log(x) (base 10) or log(x, base), ln, log10, log2, exp, pow(x, y); and, for \
one or more numbers or a list of them, min, max, sum, average (also mean, avg), median.
Constants: pi, e, tau. No variables, units, text or comparisons.
Examples: '(2 + 3) * 4' -> 20; '2^10' -> 1024; 'average(45, 67, 23)' -> 45; \
'median([3, 1, 2])' -> 2; 'round(10 / 3, 2)' -> 3.33; 'sqrt(2)' -> 1.41421356237.
Errors (division by zero, unknown names, results over 1000 digits) come back as a sentence."""


def _calculate(expression: str) -> int | float:
    """Evaluate `expression` for the LangChain tool; see `_TOOL_DESCRIPTION`."""
    return evaluate(expression)


calculator: BaseTool = StructuredTool.from_function(
    func=_calculate,
    name="calculator",
    description=_TOOL_DESCRIPTION,
    args_schema=CalculatorInput,
)
"""The `calculator` tool; raises `CalculatorError` for input it refuses."""
