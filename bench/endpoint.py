"""The benchmarks' local endpoint in a process of its own: `python -m bench.endpoint --latency S`.

It prints its base URL, serves until its standard input closes, then stops. A benchmark that
measures Crane's own throughput runs the endpoint here, so the two do not share one GIL.
"""

from __future__ import annotations

import argparse
import sys

from bench.common import PLAN_TOKENS, rule_plan
from tests.openai_server import OpenAIServer, Reply


def main(argv: list[str] | None = None) -> None:
    """Serve until standard input reaches its end."""
    parser = argparse.ArgumentParser(prog="python -m bench.endpoint", description=__doc__)
    parser.add_argument("--latency", type=float, required=True, help="seconds per chat request")
    args = parser.parse_args(argv)
    prompt_tokens, completion_tokens = PLAN_TOKENS
    server = OpenAIServer(planner=rule_plan, latency_s=args.latency).start()
    server.default(Reply(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens))
    try:
        print(server.base_url, flush=True)  # noqa: T201
        sys.stdin.read()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
