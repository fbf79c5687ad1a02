"""Serving under load: ``yoda-serve`` on 127.0.0.1 (loopback only), batched and one at a time.

    uv run --frozen python benchmarks/bench_serve.py [--models tiny,smollm2] [--clients 1,4,8,16]
        [--requests-per-client 8] [--rss-requests 1000] [--max-new-tokens 16] [--json]

For each model (the tiny Phi-3, and SmolLM2-135M-Instruct when ``yoda-make-smollm2
build/smollm2-135m-instruct`` has converted it), each with a random non-zero LoRA adapter, a real
``yoda-serve`` process runs twice: batching on (``--max-batch-size 16``) and off
(``--max-batch-size 1``: one text per ``generate()`` call, as the old server answered). Against
each, one level after the other, 1, 4, 8 and 16 clients send requests of one sentence each (greedy,
``--max-new-tokens`` new tokens), each over its own kept-alive connection, the next once the last
is answered: requests/s and p50/p95 latency per level. SmolLM2 sends half the requests per client
(its requests take seconds). Then, on the tiny model batched, the server's resident memory
(``VmRSS``) before and after ``--rss-requests`` requests from 8 clients, one in five refused (a
400), with the errors (an answer other than the expected status, or none).

The goal: at 8 clients, at least 4x the requests/s of one client, with a p95 latency at most
twice a lone request's (the one-client median); RSS flat. The run stops by itself and exits 1 on
any error.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from yoda_step_io.contract import HYPERPARAMETERS_FILE

ROOT = Path(__file__).resolve().parents[1]
SMOLLM2 = ROOT / "build" / "smollm2-135m-instruct"
SENTENCES = [
    "The Force is strong with you.",
    "I like green tea.",
    "We walked home.",
    "Patience you must have, my young padawan.",
    "Much to learn you still have.",
]
LIMIT = 64  # --max-new-tokens-limit: the refused requests ask one more
BATCHED = "batched (max_batch_size=16)"


def make_model_dir(root: Path, base: Path | None) -> Path:
    """A Model artifact like the fine-tuning step's: ``base`` (default: a new tiny Phi-3) + a
    random non-zero LoRA adapter + the tokenizer."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from yoda_devmodels.tiny_model import make_tiny_model

    torch.manual_seed(0)
    base_dir = base or make_tiny_model(root / "tiny")
    config = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir), config)
    model.save_pretrained(root / "model")
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(root / "model")
    # the step's record of its base (yoda_step_io.contract), which inference loads
    record = {"base_model": str(base_dir), "base_model_revision": "unknown"}
    (root / "model" / HYPERPARAMETERS_FILE).write_text(json.dumps(record))
    return root / "model"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


@contextmanager
def serving(model_dir: Path, *flags: str) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """``yoda-serve`` on a free loopback port, up and answering its health route."""
    from yoda_inference.serve import listen

    with listen("127.0.0.1", 0) as probe:
        port = probe.getsockname()[1]
    env = {**os.environ, "AIP_STORAGE_URI": str(model_dir), "AIP_HTTP_PORT": str(port),
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
    command = [str(Path(sys.executable).with_name("yoda-serve")), "--quantization", "auto",
               "--host", "127.0.0.1", "--max-new-tokens-limit", str(LIMIT), *flags]  # fmt: skip
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 600
            while post(port, "GET", "/health", b"")[0] != 200:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"yoda-serve did not come up: {log.read()[-3000:]!r}")
                time.sleep(0.2)
            yield port, process
        finally:
            process.terminate()
            process.wait(timeout=60)


def post(port: int, method: str, path: str, body: bytes, connection: Any = None) -> tuple[int, Any]:
    """(status, the connection to reuse) of one request; status 0: no answer."""
    connection = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        connection.request(method, path, body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        return response.status, connection
    except OSError:
        connection.close()
        return 0, None


def body(number: int, max_new_tokens: int, refused: bool = False) -> bytes:
    parameters = {"max_new_tokens": LIMIT + 1 if refused else max_new_tokens}
    instance = {"text": SENTENCES[number % len(SENTENCES)]}
    return json.dumps({"instances": [instance], "parameters": parameters}).encode()


def run_load(
    port: int, plan: list[tuple[bytes, int]], clients: int
) -> list[tuple[int, int, float]]:
    """(expected, got, seconds) per request of ``plan``, sent by ``clients`` threads."""
    results: list[tuple[int, int, float]] = []
    lock = threading.Lock()
    queue = iter(plan)

    def client() -> None:
        connection = None
        while True:
            with lock:
                item = next(queue, None)
            if item is None:
                return
            start = time.perf_counter()
            status, connection = post(port, "POST", "/predict", item[0], connection)
            with lock:
                results.append((item[1], status, time.perf_counter() - start))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def percentile(seconds: list[float], cut: int) -> float:
    if len(seconds) < 2:
        return seconds[0] * 1e3 if seconds else 0.0
    return statistics.quantiles(seconds, n=100, method="inclusive")[cut - 1] * 1e3


def level(port: int, clients: int, requests: int, tokens: int) -> dict[str, Any]:
    plan = [(body(n, tokens), 200) for n in range(requests)]
    start = time.perf_counter()
    results = run_load(port, plan, clients)
    wall = time.perf_counter() - start
    seconds = [s for _, got, s in results if got == 200]
    return {"clients": clients, "requests": requests, "requests_per_s": len(results) / wall,
            "p50_ms": percentile(seconds, 50), "p95_ms": percentile(seconds, 95),
            "errors": sum(expected != got for expected, got, _ in results)}  # fmt: skip


def measure(model_dir: Path, batch: int, args: argparse.Namespace, per_client: int) -> list[Any]:
    """One server: the client levels, in one run."""
    flags = ["--max-batch-size", str(batch), "--max-new-tokens", str(args.max_new_tokens)]
    with serving(model_dir, *flags) as (port, _):
        run_load(port, [(body(n, args.max_new_tokens), 200) for n in range(24)], 8)  # warm-up
        return [level(port, c, c * per_client, args.max_new_tokens) for c in args.clients]


def memory(model_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The tiny model batched: RSS over ``--rss-requests``, one in five refused (400)."""
    flags = ["--max-new-tokens", str(args.max_new_tokens)]
    with serving(model_dir, *flags) as (port, process):
        plan = [(body(n, args.max_new_tokens, n % 5 == 4), 400 if n % 5 == 4 else 200)
                for n in range(args.rss_requests)]  # fmt: skip
        run_load(port, plan[:40], 8)
        before = rss_mib(process.pid)
        results = run_load(port, plan, 8)
        after = rss_mib(process.pid)
        alive = process.poll() is None
    refused = [s for expected, got, s in results if expected == got == 400]
    return {"requests": len(results), "errors": sum(e != g for e, g, _ in results),
            "rss_before_mib": before, "rss_after_mib": after, "server_alive": alive,
            "refused_p50_ms": percentile(refused, 50)}  # fmt: skip


def verdict(batched: list[dict[str, Any]]) -> str:
    by_clients = {row["clients"]: row for row in batched}
    if 1 not in by_clients or 8 not in by_clients:
        return "goal not measured (needs 1 and 8 clients)"
    one, eight = by_clients[1], by_clients[8]
    speedup = eight["requests_per_s"] / one["requests_per_s"]
    stretch = eight["p95_ms"] / one["p50_ms"]
    met = speedup >= 4 and stretch <= 2
    return (f"goal {'met' if met else 'missed'}: 8 clients {speedup:.1f}x the requests/s of one "
            f"(goal >= 4x), p95 {stretch:.1f}x a lone request's {one['p50_ms']:.0f} ms "
            "(goal <= 2x)")  # fmt: skip


def table(figures: dict[str, Any]) -> str:
    lines = ["| model | serving | clients | requests/s | p50 / p95 ms | vs 1 client | errors |",
             "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for model, runs in figures["models"].items():
        for mode, rows in runs.items():
            if not isinstance(rows, list):
                continue
            for row in rows:
                ratio = row["requests_per_s"] / rows[0]["requests_per_s"]
                lines.append(f"| {model} | {mode} | {row['clients']} | "
                             f"{row['requests_per_s']:.1f} | {row['p50_ms']:.0f} / "
                             f"{row['p95_ms']:.0f} | {ratio:.1f}x | {row['errors']} |")  # fmt: skip
        lines.append(f"\n{model}: {runs['verdict']}\n")
    rss = figures.get("memory")
    if rss is None:
        return "\n".join(lines)
    lines.append(f"memory (tiny, batched): {rss['requests']} requests, {rss['errors']} errors, "
                 f"RSS {rss['rss_before_mib']:.0f} -> {rss['rss_after_mib']:.0f} MiB; a refusal "
                 f"(400) p50 {rss['refused_p50_ms']:.1f} ms")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="tiny,smollm2", help="tiny, smollm2 or both")
    parser.add_argument("--clients", type=lambda s: [int(c) for c in s.split(",")],
                        default=[1, 4, 8, 16])  # fmt: skip
    parser.add_argument("--requests-per-client", type=int, default=8)
    parser.add_argument("--rss-requests", type=int, default=1000)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    args = parser.parse_args()
    figures: dict[str, Any] = {"models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            if name == "smollm2" and not (SMOLLM2 / "config.json").is_file():
                print(f"SmolLM2 skipped: not converted (yoda-make-smollm2 {SMOLLM2})",
                      file=sys.stderr)  # fmt: skip
                continue
            model_dir = make_model_dir(Path(tmp) / name, SMOLLM2 if name == "smollm2" else None)
            per_client = args.requests_per_client // (2 if name == "smollm2" else 1)
            runs: dict[str, Any] = {
                mode: measure(model_dir, batch, args, max(1, per_client))
                for mode, batch in ((BATCHED, 16), ("one at a time (max_batch_size=1)", 1))
            }
            runs["verdict"] = verdict(runs[BATCHED])
            figures["models"][name] = runs
            if name == "tiny":
                figures["memory"] = memory(model_dir, args)
    print(json.dumps(figures) if args.json else table(figures))
    errors = sum(row["errors"] for runs in figures["models"].values() for rows in runs.values()
                 if isinstance(rows, list) for row in rows)  # fmt: skip
    rss = figures.get("memory", {"errors": 0, "server_alive": True})
    if errors or rss["errors"] or not rss["server_alive"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
