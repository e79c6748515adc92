"""Labeled request pairs for calibrating and proving the semantic plan cache's guard.

Each pair is a request whose successful plan is cached and a request that arrives later.

- `paraphrase`: the same meaning and parameters in other words; serving the cached plan for
  the new request is correct. Todo texts are identical, casing included, on both sides.
- `near_miss`: embedding models score these about as high as paraphrases, but serving the
  cached plan verbatim gives a different result than planning the new request would.

Every `cached` request is planned by the rule planner (`graph.pattern_planner`), and so is every
`new` request, except the negations marked below, which it refuses: serving a plan where the
planner would refuse is a different result too. tests/oracle.py runs both sides on the same
seeded todo list (ids 1 to 10: see `SEED_TODOS` there), so get, complete and delete have
targets.

Percentages of a number are commutative ("8% of 50" and "50% of 8" are both 4), as are
"difference between" and equal-result swaps such as "2 to the power of 4" and "4 to the power of
2": such swaps are not near misses, and are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["paraphrase", "near_miss"]

NEAR_MISS_CATEGORIES = (
    "other_numbers",
    "number_words",
    "swapped_operands",
    "other_todo_text",
    "other_action",
    "negation",
    "unit_change",
    "other_operation",
    "chain_change",
    "other_id",
)


@dataclass(frozen=True)
class Pair:
    cached: str
    """The request whose successful plan is in the cache."""
    new: str
    """The request that arrives later."""
    kind: Kind
    category: str
    """For a paraphrase, what it covers; for a near miss, one of NEAR_MISS_CATEGORIES."""


def _same(category: str, *pairs: tuple[str, str]) -> tuple[Pair, ...]:
    return tuple(Pair(cached, new, "paraphrase", category) for cached, new in pairs)


def _miss(category: str, *pairs: tuple[str, str]) -> tuple[Pair, ...]:
    return tuple(Pair(cached, new, "near_miss", category) for cached, new in pairs)


PARAPHRASES: tuple[Pair, ...] = (
    *_same(
        "percent",
        ("what is 15% of 200", "what's 15 percent of 200?"),
        ("what is 8% of 50", "calculate 8 percent of 50"),
        ("how much is 20% of 150", "what is 20 percent of 150"),
        ("what is 15% of 80", "Please calculate 15% of 80"),
        ("what percent is 20 of 80", "20 is what percent of 80"),
        ("increase 50 by 10%", "increase 50 by 10 percent"),
        ("what is 200 plus 10%", "200 + 10%"),
        ("take 25% off 80", "25% off 80"),
    ),
    *_same(
        "arithmetic",
        ("what is 2+2", "what is 2 plus 2?"),
        ("what is 9 times 6", "what's 9 x 6"),
        ("calculate 9 multiplied by 6", "how much is 9 times 6?"),
        ("what is 10 minus 3", "10 - 3"),
        ("what is 12 divided by 4", "12 / 4"),
        ("can you work out 123 + 456", "what is 123 plus 456"),
        ("What Is 7 times 8", "what is 7 x 8"),
        ("WHAT IS 100 MINUS 37", "what is 100 - 37"),
        ("what is five plus three", "what is 5 + 3"),
        ("what is twenty one times 2", "what is 21 times 2"),
        ("subtract 3 from 10", "what is 10 minus 3"),
        ("double 21", "what is 21 times 2"),
        ("half of 90", "what is 90 divided by 2"),
    ),
    *_same(
        "power_root",
        ("what is 2 to the power of 3", "2^3"),
        ("what is 5 squared", "5 to the power of 2"),
        ("what is 2 cubed", "raise 2 to the power of 3"),
        ("square root of 144", "what's the square root of 144?"),
        ("sqrt 144", "what is the square root of 144"),
        ("cube root of 27", "what is the cube root of 27?"),
        ("what is 3 to the 4th power", "3^4"),
    ),
    *_same(
        "aggregate",
        ("average of 12, 30 and 48", "what's the average of 12, 30 and 48?"),
        ("mean of 12, 30 and 48", "average of 12, 30 and 48"),
        ("max of 3, 9 and 4", "what is the largest of 3, 9 and 4"),
        ("min of 3, 9 and 4", "what is the smallest of 3, 9 and 4"),
        ("sum of 12, 30 and 48", "add up 12, 30 and 48"),
        ("median of 1, 2 and 9", "what is the median of 1, 2 and 9"),
    ),
    *_same(
        "rounding",
        ("round 2.567 to 2 decimal places", "please round 2.567 to 2 decimals"),
        ("round 2.567 to the nearest whole number", "round 2.567 to the nearest integer"),
        ("floor 2.7", "what is floor(2.7)"),
        ("round 2.7", "what is round(2.7)"),
    ),
    *_same(
        "todo_add",
        ("add a todo to renew my passport", "remind me to renew my passport"),
        ("remind me to buy eggs", "Please remind me to buy eggs"),
        ("add call the bank to my list", "add a todo to call the bank"),
        (
            "remind me to pick up the dry cleaning",
            "don't let me forget to pick up the dry cleaning",
        ),
        ("add a task to book the flights", "can you add a todo to book the flights?"),
        ("new todo: fix the bike", "add a todo to fix the bike"),
        ("remind me to Call Grandma", "add a todo to Call Grandma"),
    ),
    *_same(
        "todo_list",
        ("show my todos", "list my tasks"),
        ("what's on my list", "show me my todo list"),
        ("show me my tasks", "what are my todos?"),
        ("list my todos please", "display my tasks"),
    ),
    *_same(
        "todo_get",
        ("show todo 3", "get todo 3"),
        ("what is todo 3", "show me todo 3"),
        ("show the buy milk todo", "get the buy milk todo"),
        ("show todo number 5", "show todo 5"),
        ("get the renew my license todo", "show the renew my license todo"),
    ),
    *_same(
        "todo_complete",
        ("complete todo 3", "mark todo 3 as done"),
        ("mark todo 4 done", "please complete todo 4"),
        ("mark buy milk as done", "complete buy milk"),
        ("tick off buy bread", "mark buy bread as done"),
        ("check off call the dentist", "mark call the dentist as complete"),
    ),
    *_same(
        "todo_delete",
        ("delete todo 3", "remove todo 3"),
        ("delete buy milk", "remove buy milk from my list"),
        ("delete the water the plants todo", "remove water the plants from my list"),
        ("delete todo 7 please", "remove todo 7"),
        ("get rid of todo 9", "delete todo 9"),
        ("erase todo 6", "delete todo 6"),
    ),
    *_same(
        "chain",
        (
            "add a todo to renew my passport, then show me my list",
            "remind me to renew my passport then show my todos",
        ),
        ("add a todo to buy eggs then mark it as done", "remind me to buy eggs, then complete it"),
        ("add a todo to buy eggs then delete it", "remind me to buy eggs, then remove it"),
        ("add a todo to buy eggs then show my list", "add a todo to buy eggs and show my list"),
        (
            "square root of 144, then double it",
            "what is the square root of 144 and then multiply it by 2",
        ),
        ("what is 15% of 200 then add 5", "calculate 15 percent of 200, then plus 5"),
        ("complete todo 3 then show my list", "mark todo 3 as done and then list my tasks"),
        ("delete todo 2, then show my todos", "remove todo 2 then list my tasks"),
        ("what is 6 times 7 then subtract 2", "6 x 7, then minus 2"),
    ),
)

NEAR_MISSES: tuple[Pair, ...] = (
    *_miss(
        "other_numbers",
        ("what is 15% of 200", "what is 15% of 300"),
        ("what is 2+2", "what is 2+3"),
        ("what is 9 times 6", "what is 9 times 7"),
        ("square root of 144", "square root of 169"),
        ("average of 12, 30 and 48", "average of 12, 30 and 84"),
        ("round 2.567 to 2 decimal places", "round 2.567 to 1 dp"),
        ("increase 50 by 10%", "increase 50 by 20%"),
        ("what is 123 plus 456", "what is 123 plus 465"),
        ("what is 100 minus 37", "what is 100 minus 73"),
        ("max of 3, 9 and 4", "max of 3, 19 and 4"),
        ("what is 7 times 8", "what is 7 times 9"),
        ("what is 2 to the power of 10", "what is 2 to the power of 12"),
        ("12 divided by 4", "12 divided by 3"),
    ),
    *_miss(
        "number_words",
        ("what is five plus three", "what is 5 plus 4"),
        ("what is twenty one times 2", "what is 12 times 2"),
        ("what is 21 times 2", "what is twenty times 2"),
        ("square root of sixty four", "square root of 46"),
        ("what is fifteen percent of two hundred", "what is 15% of 300"),
        ("show todo three", "show todo 4"),
        ("delete todo number five", "delete todo 6"),
        ("what is one hundred minus seven", "what is 100 minus 17"),
        ("what is 3 times 7", "what is three times eight"),
        ("complete todo two", "complete todo 3"),
        ("what is ninety nine plus one", "what is 99 plus 2"),
        ("double twenty one", "double 12"),
        ("what is 5!", "what is five!"),
        ("remind me to call five friends", "remind me to call 5 friends"),
        ("add a todo to buy 1,000 stickers", "add a todo to buy 1000 stickers"),
    ),
    *_miss(
        "swapped_operands",
        ("what is 10 minus 3", "what is 3 minus 10"),
        ("what is 2 to the power of 3", "what is 3 to the power of 2"),
        ("12 divided by 4", "4 divided by 12"),
        ("subtract 3 from 10", "subtract 10 from 3"),
        ("what percent is 20 of 80", "what percent is 80 of 20"),
        ("20 less than 50", "50 less than 20"),
        ("remainder of 17 divided by 5", "remainder of 5 divided by 17"),
        ("increase 50 by 10%", "increase 10 by 50%"),
        ("take 8% off 50", "take 50% off 8"),
        ("what is 2 to the power of 5", "what is 5 to the power of 2"),
        ("what is 7 minus 2", "what is 2 minus 7"),
        ("divide 100 by 4", "divide 4 by 100"),
    ),
    *_miss(
        "other_todo_text",
        ("remind me to call the dentist", "remind me to call the plumber"),
        ("add a todo to buy milk", "add a todo to buy bread"),
        ("add a todo to renew my passport", "add a todo to renew my license"),
        ("mark call the dentist as done", "mark call the plumber as done"),
        ("delete buy milk", "delete buy bread"),
        ("show the renew my passport todo", "show the renew my license todo"),
        ("complete renew my passport", "complete renew my license"),
        ("remove buy milk from my list", "remove buy bread from my list"),
        ("remind me to email the landlord", "remind me to email the plumber"),
        ("add a todo to water the plants", "add a todo to water the lawn"),
        ("tick off buy milk", "tick off buy bread"),
        ("delete the call the dentist todo", "delete the call the plumber todo"),
        ("remind me to call the dentist", "remind me to call dentist"),
        ("remind me to renew my passport", "remind me to renew passport"),
        ("remind me to call The dentist", "remind me to call the dentist"),
        ("remind me to call the dentist", "remind me to call the dentist please"),
        ("remind me to say thanks", "remind me to say thank you"),
        ("remind me to finish the report", "remind me to complete the report"),
        ("remind me to buy milk plus eggs", "remind me to buy milk + eggs"),
        ("remind me to call Dr. Smith", "remind me to call Dr Smith"),
        ("remind me to go to the gym", "remind me to go the gym"),
        ("remind me to 'buy milk'", "remind me to '`buy eggs`'"),
    ),
    *_miss(
        "other_action",
        ("complete todo 3", "delete todo 3"),
        ("show todo 3", "delete todo 3"),
        ("show todo 3", "complete todo 3"),
        ("mark buy milk as done", "delete buy milk"),
        ("delete buy milk", "show the buy milk todo"),
        ("add a todo to buy milk", "delete buy milk"),
        ("add a todo to buy milk", "mark buy milk as done"),
        ("remove todo 5", "mark todo 5 as done"),
        ("get todo 7", "remove todo 7"),
        ("complete call the plumber", "delete call the plumber"),
        ("tick off renew my license", "remove renew my license from my list"),
        ("remind me to water the plants", "complete water the plants"),
        ("delete 'buy milk'", "delete 'todo 5'"),
    ),
    *_miss(
        "negation",
        # The rule planner refuses the "don't" / "do not" sides: planned from scratch they give
        # no plan, so serving the cached one would act where nothing should happen.
        ("add a todo to call mom", "don't add a todo to call mom"),
        ("delete buy milk", "don't delete buy milk"),
        ("mark buy milk as done", "don't mark buy milk as done"),
        ("remind me to buy milk", "don't remind me to buy milk"),
        ("add call mom to my list", "do not add call mom to my list"),
        ("delete todo 3", "do not delete todo 3"),
        # Planned on both sides: a negated todo text, or a negative number.
        ("remind me to call mom", "remind me to not call mom"),
        ("add a todo to reply to the email", "add a todo to not reply to the email"),
        ("what is 5 times 3", "what is negative 5 times 3"),
        ("what is 8 minus 3", "what is 8 minus negative 3"),
        ("what is 2 to the power of 3", "what is 2 to the power of negative 3"),
        ("what is 4 plus 6", "what is negative 4 plus 6"),
        ("remind me to never skip breakfast", "remind me to not skip breakfast"),
    ),
    *_miss(
        "unit_change",
        ("what is 200 plus 10%", "what is 200 plus 10"),
        ("increase 50 by 10%", "increase 50 by 10"),
        ("subtract 20% from 80", "subtract 20 from 80"),
        ("what is 5 squared", "what is 5 cubed"),
        ("square root of 64", "cube root of 64"),
        ("remind me to walk the dog for 30 minutes", "remind me to walk the dog for 30 hours"),
        ("remind me to set a timer for 5 minutes", "remind me to set a timer for 5 hours"),
        ("remind me to run 5 miles", "remind me to run 5 kilometers"),
        ("half of 90", "a third of 90"),
        ("a quarter of 80", "a third of 80"),
        ("what is 3 squared", "what is 3 cubed"),
        ("remind me to charge the phone to 80 percent", "remind me to charge the phone to 80%"),
    ),
    *_miss(
        "other_operation",
        ("what is 9 plus 6", "what is 9 minus 6"),
        ("what is 9 times 6", "what is 9 plus 6"),
        ("what is 12 divided by 4", "what is 12 times 4"),
        ("average of 12, 30 and 48", "sum of 12, 30 and 48"),
        ("max of 3, 9 and 4", "min of 3, 9 and 4"),
        ("round 2.7", "floor 2.7"),
        ("ceil 2.2", "floor 2.2"),
        ("double 21", "triple 21"),
        ("median of 1, 2 and 9", "average of 1, 2 and 9"),
        ("square root of 16", "square of 16"),
        ("increase 80 by 25%", "decrease 80 by 25%"),
        ("half of 90", "double 90"),
        ("product of 3, 4 and 5", "sum of 3, 4 and 5"),
        ("what is 10 mod 3", "what is 10 divided by 3"),
        ("what is 5!", "what is 5 !"),
    ),
    *_miss(
        "chain_change",
        ("add a todo to buy eggs then show my list", "add a todo to buy eggs"),
        ("add a todo to buy eggs then mark it as done", "add a todo to buy eggs then delete it"),
        ("square root of 144, then double it", "square root of 144, then triple it"),
        ("what is 15% of 200 then add 5", "what is 15% of 200 then subtract 5"),
        ("complete todo 3 then show my list", "delete todo 3 then show my list"),
        (
            "remind me to renew my passport then show my todos",
            "remind me to renew my license then show my todos",
        ),
        ("add a todo to buy eggs then show my list", "show my list"),
        ("what is 6 times 7 then subtract 2", "what is 6 times 7"),
        ("delete todo 2, then show my todos", "complete todo 2, then show my todos"),
        ("add a todo to buy eggs, then add a todo to buy flour", "add a todo to buy eggs"),
        ("add a todo to buy eggs", "add a todo to buy eggs then mark it as done"),
        ("what is 2+2 then double it", "what is 2+2 then double it then add 1"),
        ("add a todo to buy eggs then show my list", "add a todo to buy eggs then delete it"),
    ),
    *_miss(
        "other_id",
        ("show todo 3", "show todo 4"),
        ("delete todo 3", "delete todo 4"),
        ("complete todo 1", "complete todo 2"),
        ("mark todo 5 as done", "mark todo 6 as done"),
        ("get todo 7", "get todo 8"),
        ("remove todo 9", "remove todo 10"),
        ("what is todo 2", "what is todo 12"),
        ("delete todo 1 then show my list", "delete todo 10 then show my list"),
        ("show todo #5", "show todo #6"),
        ("complete todo number 8", "complete todo number 9"),
        ("show me todo 10", "show me todo 1"),
    ),
)

PAIRS: tuple[Pair, ...] = PARAPHRASES + NEAR_MISSES
