"""``docs/parameters.md``, written from the parameter table (``make parameters-doc``); a test
checks the committed page is current."""

from __future__ import annotations

import sys
from typing import Any

from yoda_pipeline.parameters import FIXED, ROWS, PipelineParameters, is_compiled
from yoda_pipeline.preflight import step_of
from yoda_pipeline.signatures import kfp_type, routes
from yoda_step_io.values import Allowed


def allowed_values(name: str) -> str:
    """What the parameter may be, in the words of the step flag it goes to first (its owner)."""
    route = routes(name)[0]
    parser = step_of("yoda-" + route.step.replace("_", "-")).parser()
    action = next(a for a in parser._actions if route.flag in a.option_strings)
    return action.type.words if isinstance(action.type, Allowed) else "any"


def _cell(value: Any) -> str:
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return f"`{text}`" if text else "(empty)"


def parameters_page() -> str:
    """The parameter table as Markdown."""
    lines = [
        "# Pipeline parameters",
        "",
        "Written by `make parameters-doc` from `pipeline/src/yoda_pipeline/parameters.py`, the one",
        "place each parameter is declared. Each is a setting too: `YODA_<NAME>` in the",
        "environment or `.env`, or `--set name=value` on the `yoda-pipeline` commands that run",
        "the pipeline (`SET='name=value …'` on their make targets). \"allowed\" is what the",
        "step that uses the value accepts, in its own words: before anything runs, the",
        "pre-flight passes every task's arguments through its step's checks, and a value outside",
        "them is refused with one line naming its variable. A compiled parameter is fixed when",
        "the pipeline is compiled (not a run parameter of the Vertex AI console).",
        "",
        "`SET` takes the pairs verbatim, never through the shell: a pair starts at a parameter's",
        "name and `=`, so values may hold spaces, quotes and JSON, e.g.",
        "`make run-local SET='registry_model_name=yoda-2 lora_target_modules=q_proj, v_proj'`.",
        "",
        "| parameter | type | default | allowed | step flag | what it does |",
        "|---|---|---|---|---|---|",
    ]
    for name in ROWS:
        field = PipelineParameters.model_fields[name]
        flags = "<br>".join(f"{route.step} `{route.flag}`" for route in routes(name))
        kind = kfp_type(name).__name__ + (" (compiled)" if is_compiled(name) else "")
        lines.append(
            f"| `{name}` | {kind} | {_cell(field.default)} | {allowed_values(name)} "
            f"| {flags} | {field.description} |"
        )
    if FIXED:
        lines += ["", "## Step flags the pipeline leaves at the step's default", ""]
    lines += [
        f"- {step} `{flag}`: {reason}."
        for step, flags in FIXED.items()
        for flag, reason in flags.items()
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(parameters_page())
