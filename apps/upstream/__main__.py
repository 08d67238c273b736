"""`python -m apps.upstream --host 127.0.0.1 --port 8100 [--control-token T]`: run the emulator."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

import uvicorn

from .app import create_app
from .config import KEEP_ALIVE_SECONDS, EmulatorConfig


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m apps.upstream", description=__doc__)
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Shared with the `run_upstream` management command."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument(
        "--control-token",
        default=os.environ.get("UPSTREAM_CONTROL_TOKEN"),
        help="require this x-control-token on /_control/* (default: loopback-only access)",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("UPSTREAM_API_KEY"),
        help="accept only this API key (default: any non-empty key)",
    )
    parser.add_argument(
        "--batch-processing-seconds", type=float, default=2.0, help="how long a whole Message Batch takes to process"
    )
    parser.add_argument(
        "--public-base-url", default=None, help="base URL used in batch results_url (default: from each request's Host)"
    )
    parser.add_argument("--log-level", default="info")


def config_from_arguments(arguments: argparse.Namespace) -> EmulatorConfig:
    return EmulatorConfig(
        api_key=arguments.api_key,
        control_token=arguments.control_token,
        batch_processing_seconds=arguments.batch_processing_seconds,
        public_base_url=arguments.public_base_url,
    )


def serve(arguments: argparse.Namespace) -> None:
    app = create_app(config_from_arguments(arguments))
    uvicorn.run(
        app,
        host=arguments.host,
        port=arguments.port,
        log_level=arguments.log_level,
        lifespan="off",
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )


def main(argv: Sequence[str] | None = None) -> None:
    serve(build_parser().parse_args(argv))


if __name__ == "__main__":
    main()
