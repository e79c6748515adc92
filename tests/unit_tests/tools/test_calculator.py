"""Tests for the safe calculator: values, errors, hostile input and the LangChain tool."""

from __future__ import annotations

import ast
import math

import pytest
from langchain_core.messages import ToolMessage
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ValidationError

from graph.errors import ToolError
from tools.calculator import (
    MAX_DIGITS,
    MAX_FACTORIAL,
    CalculatorError,
    CalculatorInput,
    calculator,
    evaluate,
    parse_expression,
)


def assert_refused(expression: object, reason: str) -> CalculatorError:
    with pytest.raises(CalculatorError) as info:
        evaluate(expression)  # type: ignore[arg-type]
    error = info.value
    assert error.reason == reason, str(error)
    assert error.tool == "calculator"
    message = str(error)
    # A sentence for a person, not a bare exception name or a traceback.
    assert message.endswith((".", "?")), message
    assert " " in message
    assert "Traceback" not in message
    return error


# --- values ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("2+2", 4),
        ("2 - 5", -3),
        ("6 * 7", 42),
        ("10 / 4", 2.5),
        ("10 / 5", 2),
        ("7 // 2", 3),
        ("-7 // 2", -4),
        ("10 % 3", 1),
        ("-3", -3),
        ("+3", 3),
        ("--3", 3),
        ("1.5 + 1.5", 3),
        ("1e3 + 1", 1001),
        ("1_000 + 1", 1001),
        (".5 * 4", 2),
        ("  12  ", 12),
        ("1\n+\t2", 3),
    ],
)
def test_arithmetic(expression: str, expected: float) -> None:
    assert evaluate(expression) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("2 + 3 * 4", 14),
        ("(2 + 3) * 4", 20),
        ("2 * 3 ** 2", 18),
        ("-2 ** 2", -4),
        ("(-2) ** 2", 4),
        ("10 - 4 - 3", 3),
        ("100 / 10 / 5", 2),
        ("2 + 10 % 4", 4),
        ("((1 + 2) * (3 + 4)) / 7", 3),
    ],
)
def test_precedence(expression: str, expected: float) -> None:
    assert evaluate(expression) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("8% * 50", 4),
        ("50 * 8%", 4),
        ("15% of 80", 12),
        ("15 % of 80", 12),
        ("(1+1)%", 0.02),
        ("50%", 0.5),
        ("200 * 10% + 5", 25),
        ("10 / 4%", 250),  # percent binds to its number, like a postfix operator
        ("sqrt(16)%", 0.04),
        ("5%%", 0.0005),
        ("8% - 3", -2.92),  # percent written against its number
        ("8%-3", -2.92),
        ("50% + 1", 1.5),
        ("10 % 3", 1),  # modulo
        ("10%3", 1),
        ("7 % 2.5", 2),
        ("10 % -3", -2),  # spaced: modulo by a negative number, as substituted references give
        ("10 % (-3)", -2),
        ("2^3%", 2**0.03),  # the percent binds to the 3: not (2 ** 3) / 100
    ],
)
def test_percentages(expression: str, expected: float) -> None:
    assert evaluate(expression) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("2 ** 10", 1024),
        ("2 ^ 10", 1024),
        ("2 ** 3 ** 2", 512),  # right-associative: 2 ** 9
        ("2 ^ 3 ^ 2", 512),
        ("(2 ** 3) ** 2", 64),
        ("2 ** -1", 0.5),
        ("(-2) ** 3", -8),
        ("(-8) ** 2.0", 64),
        ("4 ** 0.5", 2),
        ("0 ** 0", 1),
        ("0 ** 5", 0),
        ("1 ** (10 ** 100)", 1),
        ("(-1) ** (10 ** 100 + 1)", -1),
        ("0.5 ** (10 ** 400)", 0),
        ("2 ** -2000", 0),
        ("pow(2, 10)", 1024),
        ("pow(9, 0.5)", 3),
    ],
)
def test_powers(expression: str, expected: float) -> None:
    assert evaluate(expression) == expected


def test_large_powers() -> None:
    assert evaluate("2 ** 63 - 1") == 2**63 - 1 and type(evaluate("2 ** 63 - 1")) is int
    assert evaluate("2 ** 100") == pytest.approx(2**100, rel=1e-11)
    assert type(evaluate("2 ** 100")) is float
    assert evaluate("10 ** 1000 / 10 ** 998") == 100  # exact while computing
    assert evaluate("2 ** -1074") == 5e-324
    with pytest.raises(CalculatorError) as info:
        evaluate("10 ** 1000")
    assert info.value.reason == "too_large"


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("sqrt(16)", 4),
        ("sqrt(2)", 1.41421356237),
        ("sqrt(10 ** 600)", 1e300),
        ("cbrt(27)", 3),
        ("cbrt(-8)", -2),
        ("abs(-3.5)", 3.5),
        ("round(3.14159)", 3),
        ("round(3.14159, 2)", 3.14),
        ("round(2.5)", 3),  # half away from zero, not banker's rounding
        ("round(-2.5)", -3),
        ("round(2.675, 2)", 2.68),  # as written, despite binary 2.67499999...
        ("round(1234.5, -2)", 1200),
        ("round(1234, -2)", 1200),
        ("round(7, 2)", 7),
        ("floor(2.7)", 2),
        ("floor(-2.1)", -3),
        ("ceil(2.1)", 3),
        ("min(3, 1, 2)", 1),
        ("max(3, 1, 2)", 3),
        ("max(-1)", -1),
        ("sum(1, 2, 3)", 6),
        ("sum(0.1, 0.2, 0.3)", 0.6),
        ("average(45, 67, 23)", 45),
        ("average([1, 2, 3, 4])", 2.5),
        ("average([1, 2], 3)", 2),
        ("mean(1, 2)", 1.5),
        ("avg([10, 20])", 15),
        ("median(3, 1, 2)", 2),
        ("median([4, 1, 3, 2])", 2.5),
        ("max((1, 5), 3)", 5),
        ("factorial(0)", 1),
        ("factorial(5)", 120),
        ("factorial(5.0)", 120),
        ("log(100)", 2),  # base 10, as on a pocket calculator
        ("ln(e)", 1),
        ("log(100, 10)", 2),
        ("log(1000, 10)", 3),
        ("log(8, 2)", 3),
        ("ln(e ** 2)", 2),
        ("log10(1000)", 3),
        ("log2(1024)", 10),
        ("exp(0)", 1),
        ("exp(1)", 2.71828182846),
        ("exp(-10 ** 400)", 0),
        ("SQRT(16) + Max(1, 2)", 6),
    ],
)
def test_functions(expression: str, expected: float) -> None:
    assert evaluate(expression) == expected


def test_factorial() -> None:
    assert evaluate("factorial(20)") == math.factorial(20)  # below 2**63: exact int
    assert evaluate("factorial(50)") == pytest.approx(math.factorial(50), rel=1e-11)
    assert evaluate(f"factorial({MAX_FACTORIAL}) / factorial({MAX_FACTORIAL - 1})") == MAX_FACTORIAL
    assert math.factorial(MAX_FACTORIAL) < 10**MAX_DIGITS < math.factorial(MAX_FACTORIAL + 1)
    assert evaluate("factorial(50) / factorial(48)") == 2450
    with pytest.raises(CalculatorError) as info:
        evaluate("factorial(171)")  # beyond the float range
    assert info.value.reason == "too_large"


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("pi", math.pi),
        ("e", math.e),
        ("tau", math.tau),
        ("PI", math.pi),
        ("π", math.pi),
        ("2 * pi", math.tau),
    ],
)
def test_constants(expression: str, expected: float) -> None:
    assert evaluate(expression) == pytest.approx(expected, rel=1e-11)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("8% * 50", 4),
        ("10 / 5", 2),
        ("2.5 * 4", 10),
        ("sqrt(16)", 4),
        ("-0.0", 0),
        ("1e14", 10**14),
    ],
)
def test_integral_results_are_ints(expression: str, expected: int) -> None:
    result = evaluate(expression)
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize(
    ("expression", "expected"), [("10 / 4", 2.5), ("1e15", 1e15), ("1e20 * 3", 3e20)]
)
def test_fractional_or_huge_results_are_floats(expression: str, expected: float) -> None:
    result = evaluate(expression)
    assert result == expected
    assert type(result) is float


def test_integers_beyond_64_bits_become_floats() -> None:
    """Checkpointers (msgpack) and most JSON readers carry at most 64-bit integers."""
    assert type(evaluate("9223372036854775807")) is int
    assert type(evaluate("9223372036854775808")) is float
    assert evaluate("10 ** 20 + 1") == 1e20


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0.1 + 0.2", 0.3),
        ("1.1 * 3", 3.3),
        ("1 - 0.9", 0.1),
        ("1 / 3", 0.333333333333),
        ("10 / 3 * 3", 10),
    ],
)
def test_binary_noise_is_rounded_away(expression: str, expected: float) -> None:
    assert evaluate(expression) == expected


def test_no_bool_results() -> None:
    for expression in ("1", "0", "1 - 1", "min(1, 2) - 1"):
        assert type(evaluate(expression)) is int


# --- normalisation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("2 × 3", 6),
        ("2 ⋅ 3", 6),
        ("6 ÷ 4", 1.5),
        ("5 − 2", 3),
        ("2\u00a0+\u00a02", 4),  # no-break spaces
        ("٣ + 4", 7),  # Arabic-Indic digits are digits
        ("１２ + 1", 13),  # full-width digits too
    ],
)
def test_unicode_normalisation(expression: str, expected: float) -> None:
    assert evaluate(expression) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1,000,000 * 2", 2_000_000),
        ("2,500 * 3", 7500),
        ("(1,000 + 5) * 2", 2010),
        ("1,234.5 + 0.5", 1235),
        ("10% * 1,000", 100),
        # Inside a call a comma separates arguments, so nothing is guessed there.
        ("max(1,000)", 1),
        ("max(1,000, 2)", 2),
        ("sum(1,000)", 1),
    ],
)
def test_thousands_separators_only_outside_calls(expression: str, expected: float) -> None:
    assert evaluate(expression) == expected


@pytest.mark.parametrize("expression", ["1,0000", "1,000,00", "1, 000", "1,2"])
def test_commas_that_are_not_thousands_separators(expression: str) -> None:
    assert_refused(expression, "syntax")


# --- errors -----------------------------------------------------------------------------------


def test_calculator_error_is_a_tool_error() -> None:
    error = assert_refused("1/0", "division_by_zero")
    assert isinstance(error, ToolError)


@pytest.mark.parametrize(
    "expression", ["1/0", "1 / (2 - 2)", "5 // 0", "5 % 0", "5.0 % 0.0", "0 ** -1", "pow(0, -2)"]
)
def test_division_by_zero(expression: str) -> None:
    error = assert_refused(expression, "division_by_zero")
    assert str(error).startswith("Division by zero is undefined")


@pytest.mark.parametrize(
    "expression", ["2 +* 3", "2 +", "(1 + 2", "1 + 2)", "2 3", "2pi", "sqrt(4", "1 = 2", "😀", "3²"]
)
def test_syntax_errors(expression: str) -> None:
    error = assert_refused(expression, "syntax")
    assert str(error).startswith("Could not understand the expression")


def test_syntax_error_message_names_the_expression() -> None:
    error = assert_refused("2 +* 3", "syntax")
    assert str(error) == "Could not understand the expression '2 +* 3': invalid syntax."


@pytest.mark.parametrize(
    ("expression", "needle"),
    [
        ("sqrt(1, 2)", "exactly 1 argument"),
        ("round(1, 2, 3)", "1 or 2 arguments"),
        ("pow(2)", "exactly 2 arguments"),
        ("max()", "at least 1 number"),
        ("average([])", "at least 1 number"),
        ("sqrt([4])", "not a list"),
        ("sqrt", "is a function"),
        ("pi(2)", "is a constant"),
    ],
)
def test_misused_functions(expression: str, needle: str) -> None:
    error = assert_refused(expression, "syntax")
    assert needle in str(error)


@pytest.mark.parametrize("expression", ["", "   ", "\n\t"])
def test_empty(expression: str) -> None:
    assert_refused(expression, "empty")


@pytest.mark.parametrize("value", [None, 42, 2.5, True, b"2+2", ["2+2"]])
def test_non_text_input(value: object) -> None:
    assert_refused(value, "syntax")


@pytest.mark.parametrize(
    ("expression", "name"),
    [
        ("x + 1", "x"),
        ("sqr(4)", "sqr"),
        ("inf", "inf"),
        ("nan", "nan"),
        ("__import__", "__import__"),
    ],
)
def test_unknown_names(expression: str, name: str) -> None:
    error = assert_refused(expression, "unknown_name")
    assert f"'{name}'" in str(error)


def test_unknown_name_suggests_a_close_match() -> None:
    error = assert_refused("sqr(4)", "unknown_name")
    assert "Did you mean 'sqrt'?" in str(error)


@pytest.mark.parametrize(
    "expression",
    [
        "sqrt(-4)",
        "log(0)",
        "log(-1)",
        "ln(0)",
        "log10(-5)",
        "log2(0)",
        "log(5, 1)",
        "log(5, -2)",
        "(-8) ** (1/3)",
        "pow(-8, 0.5)",
        "factorial(-1)",
        "factorial(2.5)",
        "round(1.5, 0.5)",
        "round(1, 5000)",
    ],
)
def test_domain_errors(expression: str) -> None:
    assert_refused(expression, "domain")


def test_domain_messages_are_clear() -> None:
    assert "not a real number" in str(assert_refused("sqrt(-4)", "domain"))
    assert "positive" in str(assert_refused("log(0)", "domain"))


@pytest.mark.parametrize(
    "expression",
    [
        "9**9**9**9",
        "10**10**10",
        "2**10**10",
        "10 ** 1001",
        "2.0 ** 5000",
        "pow(10, 10 ** 100)",
        "factorial(10**6)",
        f"factorial({MAX_FACTORIAL + 1})",
        "factorial(10 ** 1000)",
        "1e308 * 10",
        "1e300 * 1e300",
        "1e999",
        "10 ** 1000 * 10",
        "abs(-10 ** 1000 - 1)",
        "10 ** 600 * 10 ** 600",
        "exp(1000)",
        "exp(10 ** 400)",
        "10 ** 500 / 3",
        "0x" + "f" * 990,
    ],
)
def test_too_large_is_refused_not_computed(expression: str) -> None:
    assert_refused(expression, "too_large")


def test_too_large_power_explains_the_size() -> None:
    message = str(assert_refused("2 ** 10 ** 10", "too_large"))
    assert "digits" in message


@pytest.mark.parametrize(
    "expression",
    [
        "x" * 10**6,  # 1 MB: refused by length before any parsing
        "1+" * 500 + "1",
        "(" * 500 + "1" + ")" * 500,
        "(" * 300 + "1" + ")" * 300,  # short enough, but nested too deep
        "-" * 999 + "1",
        "+".join(["1"] * 300),  # more than MAX_NODES parts
        "sum(" + ",".join(["1"] * 300) + ")",
    ],
)
def test_too_long_or_too_complex(expression: str) -> None:
    assert_refused(expression, "too_long")


# --- hostile input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('echo hi')",
        "().__class__.__bases__",
        "().__class__.__bases__[0].__subclasses__()",
        "open('/etc/passwd').read()",
        "lambda: 1",
        "(lambda: 1)()",
        "[x for x in range(10**9)]",
        "(x for x in [1])",
        "{1: 2}",
        "{1, 2}",
        "'abc'",
        "'2' * 3",
        "b'x'",
        "f'{1}'",
        "round(2.5, ndigits=1)",
        "max(*[1, 2])",
        "pi.real",
        "[1, 2][0]",
        "[1, 2]",
        "1 < 2",
        "1 and 2",
        "1 if 1 else 2",
        "(x := 5)",
        "not 1",
        "~1",
        "1 << 2",
        "1 | 2",
        "1 & 2",
        "True + 1",
        "None",
        "...",
        "1j",
        "2(3)",
        "max([[1, 2]])",
    ],
)
def test_hostile_or_unsupported_input(expression: str) -> None:
    assert_refused(expression, "unsupported")


@pytest.mark.parametrize(
    "expression",
    ["open('/etc/passwd')", "eval('1')", "exec('x=1')", "globals()", "range(10**9)"],
)
def test_builtins_are_unknown_names(expression: str) -> None:
    assert_refused(expression, "unknown_name")


@pytest.mark.parametrize(
    "expression", ["import os", "1; 2", "x = 1", "'unterminated", "\x00", "def f(): pass"]
)
def test_statements_and_broken_input_are_syntax_errors(expression: str) -> None:
    assert_refused(expression, "syntax")


# --- parse_expression -------------------------------------------------------------------------


def test_parse_expression_returns_a_tree() -> None:
    tree = parse_expression("2 + 3 * 4")
    assert isinstance(tree, ast.Expression)
    assert isinstance(tree.body, ast.BinOp)


@pytest.mark.parametrize(
    "expression", ["9**9**9**9", "factorial(10**6)", "1/0", "sqrt(-1)", "exp(1000)", "8% * 50"]
)
def test_parse_expression_does_not_evaluate(expression: str) -> None:
    parse_expression(expression)


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("2 +* 3", "syntax"),
        ("sqrt(1, 2)", "syntax"),
        ("foo(1)", "unknown_name"),
        ("x + 1", "unknown_name"),
        ("().__class__", "unsupported"),
        ("'abc'", "unsupported"),
        ("", "empty"),
        ("1" * 1001, "too_long"),
        ("1e999", "too_large"),
    ],
)
def test_parse_expression_rejects_statically(expression: str, reason: str) -> None:
    with pytest.raises(CalculatorError) as info:
        parse_expression(expression)
    assert info.value.reason == reason


# --- the LangChain tool -----------------------------------------------------------------------


def test_tool_identity() -> None:
    assert calculator.name == "calculator"
    assert calculator.args_schema is CalculatorInput
    for word in ("sqrt", "average", "%", "pi"):
        assert word in calculator.description


def test_tool_invoke() -> None:
    assert calculator.invoke({"expression": "2+2"}) == 4
    assert calculator.invoke({"expression": "average([1, 2])"}) == 1.5


def test_tool_call_returns_a_tool_message() -> None:
    message = calculator.invoke(
        {
            "name": "calculator",
            "args": {"expression": "15% of 80"},
            "id": "call-1",
            "type": "tool_call",
        }
    )
    assert isinstance(message, ToolMessage)
    assert message.content == "12"


def test_tool_raises_calculator_error() -> None:
    with pytest.raises(CalculatorError) as info:
        calculator.invoke({"expression": "1/0"})
    assert info.value.reason == "division_by_zero"


def test_tool_schema_exposes_only_expression() -> None:
    schema = calculator.tool_call_schema.model_json_schema()  # type: ignore[union-attr]
    assert set(schema["properties"]) == {"expression"}
    parameters = convert_to_openai_tool(calculator)["function"]["parameters"]
    assert set(parameters["properties"]) == {"expression"}
    assert parameters["properties"]["expression"]["description"]


def test_tool_input_forbids_extra_fields() -> None:
    with pytest.raises(ValidationError):
        CalculatorInput.model_validate({"expression": "1", "extra": 2})
    with pytest.raises(ValidationError):
        calculator.invoke({"expression": "1", "extra": 2})
