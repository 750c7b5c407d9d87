"""Run the demo app (../demo/app, not a copy) as this example's target: port 18081, state
in examples/auth/.state/, so it can run next to the demo.

    python ctl.py start|stop|restart|status|reset [--port 18081]
    python ctl.py redeploy [--port 18081]   # what greenloop would run; see README.md

`redeploy` appends a line to .state/redeploys.log before restarting, so anyone can check
whether greenloop redeployed (for this example it must not: a wrong token is not fixed by
a restart).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
DEFAULT_PORT = 18081
MARKER = "redeploys.log"


def demo_ctl() -> ModuleType:
    # $DEMO_CTL lets a copy of this folder point at the demo app wherever it lives.
    path = Path(os.environ.get("DEMO_CTL") or HERE.parent / "demo" / "app" / "ctl.py")
    spec = importlib.util.spec_from_file_location("demo_ctl", path)
    if spec is None or spec.loader is None or not path.is_file():
        sys.exit(f"auth: cannot find the demo app's ctl.py at {path} (set DEMO_CTL)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "action", choices=["start", "stop", "restart", "status", "reset", "redeploy"]
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--state-dir", type=Path, default=HERE / ".state")
    args = parser.parse_args(argv)
    state_dir: Path = args.state_dir.resolve()

    action = args.action
    if action == "redeploy":
        state_dir.mkdir(parents=True, exist_ok=True)
        with open(state_dir / MARKER, "a", encoding="utf-8") as marker:
            marker.write(f"{datetime.now(UTC).isoformat(timespec='seconds')} redeploy\n")
        action = "restart"
    result: int = demo_ctl().main([action, "--port", str(args.port), "--state-dir", str(state_dir)])
    return result


if __name__ == "__main__":
    sys.exit(main())
