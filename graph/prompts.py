"""Prompt templates of the LLM planner (`str.format` placeholders in braces)."""

from __future__ import annotations

PLANNER_SYSTEM_PROMPT = """\
You are the planner of Crane, an assistant that fulfils a person's request by calling tools.
Turn the request into a plan: the smallest ordered list of tool calls that fulfils it.

Tools (name, what it does, input schema):
{tool_specs}

Rules:
- Use only the tools above, with exactly the arguments of their input schema.
- Number steps 1, 2, 3, ... in order; use at most {max_steps} steps.
- To use an earlier step's output, write the string "{{{{step_N.field}}}}" as an argument value,
  e.g. {{"action": "complete", "text": null, "todo_id": "{{{{step_1.id}}}}"}}. A calculator step's
  output is a number: refer to it as "{{{{step_N.result}}}}", also inside an expression.
- Write calculator expressions with the calculator's own functions: "average of 45, 67 and 23"
  is "average(45, 67, 23)", never "45 + 67 + 23 / 3".
- Keep a todo's text in the person's own words.
- final_goal restates the request in one sentence.

Examples:
{examples}
"""

REPAIR_PROMPT = """\
Your previous plan for this request could not be used:
{errors}
Return a corrected plan."""

FEW_SHOT_EXAMPLES: list[tuple[str, dict[str, object]]] = [
    (
        "what is 15% of 80",
        {
            "steps": [
                {
                    "step_number": 1,
                    "tool_name": "calculator",
                    "tool_input": {"expression": "15% * 80"},
                    "reasoning": "15 percent of 80.",
                }
            ],
            "final_goal": "Compute 15% of 80.",
        },
    ),
    (
        "add a todo to renew my passport, then show me my list",
        {
            "steps": [
                {
                    "step_number": 1,
                    "tool_name": "todo_store",
                    "tool_input": {"action": "add", "text": "renew my passport", "todo_id": None},
                    "reasoning": "Add the new todo.",
                },
                {
                    "step_number": 2,
                    "tool_name": "todo_store",
                    "tool_input": {"action": "list", "text": None, "todo_id": None},
                    "reasoning": "Show the list.",
                },
            ],
            "final_goal": "Add 'renew my passport' and show all todos.",
        },
    ),
    (
        "add buy eggs to my list and mark it done",
        {
            "steps": [
                {
                    "step_number": 1,
                    "tool_name": "todo_store",
                    "tool_input": {"action": "add", "text": "buy eggs", "todo_id": None},
                    "reasoning": "Add the todo.",
                },
                {
                    "step_number": 2,
                    "tool_name": "todo_store",
                    "tool_input": {"action": "complete", "text": None, "todo_id": "{{step_1.id}}"},
                    "reasoning": "Complete the todo step 1 added.",
                },
            ],
            "final_goal": "Add 'buy eggs' and mark it complete.",
        },
    ),
    (
        "delete the dentist todo",
        {
            "steps": [
                {
                    "step_number": 1,
                    "tool_name": "todo_store",
                    "tool_input": {"action": "delete", "text": "dentist", "todo_id": None},
                    "reasoning": "Delete the todo matching 'dentist'.",
                }
            ],
            "final_goal": "Delete the dentist todo.",
        },
    ),
]
"""Hand-written request -> plan pairs covering each tool, the actions and a step reference."""
