"""A bounded load test of ``yoda-serve`` on 127.0.0.1 (loopback only): a fixed number of predict
requests from a few concurrent clients, under a hard time limit; it stops by itself.

    uv run --frozen python benchmarks/bench_serve.py [--requests 200] [--clients 4]
        [--time-limit-s 300] [--model-dir DIR] [--json]

The server is a real ``yoda-serve`` process with the tiny Phi-3 and a (randomly initialised,
non-zero) LoRA adapter written to a temporary folder, or the Model artifact in ``--model-dir``.
One request in five is one the server must refuse (``max_new_tokens`` over its limit: a 400);
the others are answered (a 200). Measured: p50/p95/max latency of each kind, the errors (an
answer other than the expected status, or no answer), and the server's resident memory
(``VmRSS`` in ``/proc/PID/status``) after a warm-up and after the load, to check it stays flat.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
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

SENTENCES = [
    "The Force is strong with you.",
    "I like green tea.",
    "We walked home.",
    "Patience you must have, my young padawan.",
    "Much to learn you still have.",
]
MAX_NEW_TOKENS_LIMIT = 64
#: the server's flags: small limits, so the refused kind is cheap to make
SERVER_FLAGS = ["--quantization", "auto", "--host", "127.0.0.1", "--max-new-tokens", "16",
                "--max-new-tokens-limit", str(MAX_NEW_TOKENS_LIMIT)]  # fmt: skip


def make_model_dir(root: Path) -> Path:
    """A Model artifact like the fine-tuning step's: the tiny model + a LoRA adapter + tokenizer."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from yoda_fine_tuning.tiny_model import make_tiny_model

    torch.manual_seed(0)
    base_dir = make_tiny_model(root / "tiny")
    config = LoraConfig(r=8, lora_alpha=16, target_modules=["qkv_proj", "o_proj"],
                        init_lora_weights=False)  # fmt: skip
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir), config)
    model.save_pretrained(root / "model")
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(root / "model")
    return root / "model"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mib(pid: int) -> float:
    """The process's resident memory now, from ``/proc/PID/status``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def post(port: int, body: bytes, timeout_s: float) -> int:
    """The status of one predict request (0: no answer)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        connection.request("POST", "/predict", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        return response.status
    except OSError:
        return 0
    finally:
        connection.close()


@contextmanager
def serving(model_dir: Path, timeout_s: float) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """``yoda-serve`` on a free loopback port, up and answering its health route."""
    port = free_port()
    env = {**os.environ, "AIP_STORAGE_URI": str(model_dir), "AIP_HTTP_PORT": str(port),
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
    script = Path(sys.executable).with_name("yoda-serve")
    process = subprocess.Popen([str(script), *SERVER_FLAGS], env=env, text=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + timeout_s
        while not health_ok(port):
            if process.poll() is not None or time.monotonic() > deadline:
                log = process.stderr.read() if process.stderr and process.poll() is not None else ""
                raise RuntimeError(f"yoda-serve did not come up on port {port}: {log}")
            time.sleep(0.2)
        threading.Thread(target=drain, args=(process,), daemon=True).start()
        yield port, process
    finally:
        process.terminate()
        process.wait(timeout=30)


def drain(process: subprocess.Popen[str]) -> None:
    """Read the server's log as it comes, so a full pipe never blocks it."""
    for _ in process.stderr or []:
        pass


def health_ok(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/health")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def request_plan(count: int) -> list[tuple[bytes, int]]:
    """``count`` bodies and the status each must get: one in five refused (400)."""
    plan = []
    for number in range(count):
        text = SENTENCES[number % len(SENTENCES)]
        refused = number % 5 == 4
        parameters = {"max_new_tokens": MAX_NEW_TOKENS_LIMIT + 1 if refused else 16}
        body = {"instances": [{"text": text}], "parameters": parameters}
        plan.append((json.dumps(body).encode(), 400 if refused else 200))
    return plan


def run_load(
    port: int, plan: list[tuple[bytes, int]], clients: int, deadline: float
) -> list[tuple[int, int, float]]:
    """(expected, got, seconds) per request sent; clients stop at ``deadline``."""
    results: list[tuple[int, int, float]] = []
    lock = threading.Lock()
    queue = iter(plan)

    def client() -> None:
        while time.monotonic() < deadline:
            with lock:
                item = next(queue, None)
            if item is None:
                return
            body, expected = item
            start = time.perf_counter()
            status = post(port, body, timeout_s=max(1.0, deadline - time.monotonic()))
            with lock:
                results.append((expected, status, time.perf_counter() - start))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()) + 5)
    return results


def percentiles(seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "max_ms": 0.0}
    cuts = (
        statistics.quantiles(seconds, n=20, method="inclusive")
        if len(seconds) > 1
        else seconds * 19
    )
    return {"p50_ms": statistics.median(seconds) * 1e3, "p95_ms": cuts[18] * 1e3,
            "max_ms": max(seconds) * 1e3}  # fmt: skip


def measure(
    model_dir: Path, requests: int = 200, clients: int = 4, time_limit_s: float = 300
) -> dict[str, Any]:
    """Start the server, warm it up, send the planned requests, and report."""
    deadline = time.monotonic() + time_limit_s
    with serving(model_dir, timeout_s=min(180.0, time_limit_s)) as (port, process):
        for body, _ in request_plan(5):  # warm-up: the first generation allocates its buffers
            post(port, body, timeout_s=60)
        rss_before = rss_mib(process.pid)
        start = time.perf_counter()
        results = run_load(port, request_plan(requests), clients, deadline)
        wall = time.perf_counter() - start
        rss_after = rss_mib(process.pid)
        alive = process.poll() is None
    answered = [s for expected, got, s in results if expected == 200 and got == 200]
    refused = [s for expected, got, s in results if expected == 400 and got == 400]
    return {
        "requests": requests,
        "clients": clients,
        "sent": len(results),
        "errors": sum(expected != got for expected, got, _ in results),
        "not_sent": requests - len(results),
        "answered": {"count": len(answered), **percentiles(answered)},
        "refused": {"count": len(refused), **percentiles(refused)},
        "requests_per_s": len(results) / wall if wall else 0.0,
        "wall_s": wall,
        "rss_before_mib": rss_before,
        "rss_after_mib": rss_after,
        "rss_growth_mib": rss_after - rss_before,
        "server_alive": alive,
    }


def table(figures: dict[str, Any]) -> str:
    answered, refused = figures["answered"], figures["refused"]
    rows = [
        ("requests sent / errors / not sent",
         f"{figures['sent']} / {figures['errors']} / {figures['not_sent']} "
         f"({figures['clients']} clients, {figures['wall_s']:.1f} s, "
         f"{figures['requests_per_s']:.1f} requests/s)"),
        (f"answered (200, 16 new tokens), {answered['count']}: p50 / p95 / max",
         f"{answered['p50_ms']:.0f} / {answered['p95_ms']:.0f} / {answered['max_ms']:.0f} ms"),
        (f"refused (400, max_new_tokens over the limit), {refused['count']}: p50 / p95 / max",
         f"{refused['p50_ms']:.1f} / {refused['p95_ms']:.1f} / {refused['max_ms']:.1f} ms"),
        ("server RSS after warm-up -> after the load",
         f"{figures['rss_before_mib']:.0f} -> {figures['rss_after_mib']:.0f} MiB "
         f"({figures['rss_growth_mib']:+.1f} MiB)"),
    ]  # fmt: skip
    return "\n".join(["| measurement | figure |", "| --- | --- |"]
                     + [f"| {name} | {value} |" for name, value in rows])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--time-limit-s", type=float, default=300, help="hard limit of the load")
    parser.add_argument("--model-dir", type=Path, help="a Model artifact (default: the tiny one)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model_dir or make_model_dir(Path(tmp))
        figures = measure(model_dir, args.requests, args.clients, args.time_limit_s)
    print(json.dumps(figures) if args.json else table(figures))
    if figures["errors"] or figures["not_sent"] or not figures["server_alive"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
