"""Dynamic batching: requests that arrive while the model is busy, or within a short window of
each other while it is idle (``--max-batch-delay-ms``), are answered by one ``generate()`` call of
up to ``--max-batch-size`` texts, in one worker thread, one call at a time.

Only requests with the same generation parameters share a call. The oldest waiting request
decides which parameters the next call has; a request with more texts than a call holds is
spread over several calls, in order, and may share its last one. Each request gets its own
answers, in its own order. Greedy answers do not depend on the company a text keeps in a batch:
left padding and an attention mask (``yoda_inference.generation.generate``), as the inference
step batches its test set.

TorchServe's ``batch_size`` and ``max_batch_delay``, on an asyncio event loop: the loop forms
the batches, the worker thread generates, so ``/health`` and refusals answer meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from yoda_inference.predict import GenerationParameters
from yoda_inference.serve_limits import Limits, RequestError, flag

logger = logging.getLogger(__name__)

#: Generates the answers to texts with parameters, in order (runs in the worker thread).
Answer = Callable[[list[str], GenerationParameters], list[str]]


@dataclass(eq=False)
class _Waiting:
    """A request's texts, how many a batch took and how many were answered."""

    texts: list[str]
    params: GenerationParameters
    future: asyncio.Future[list[str]]
    answers: list[str] = field(init=False)
    taken: int = 0
    answered: int = 0
    expiry: asyncio.TimerHandle | None = None

    def __post_init__(self) -> None:
        self.answers = [""] * len(self.texts)


class Batcher:
    """Queues requests and answers them in batches, one ``generate()`` call at a time.

    :meth:`run` is the loop that forms the batches (a task on the server's event loop);
    :meth:`answer` is what a request awaits.
    """

    def __init__(self, answer: Answer, limits: Limits) -> None:
        self._answer = answer
        self.limits = limits
        self._waiting: list[_Waiting] = []  # in arrival order, until every text is taken
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="yoda-generate")
        self.generating = False

    def queued(self) -> int:
        """Requests waiting of which no text is in a batch yet."""
        return sum(not w.taken and not w.future.done() for w in self._waiting)

    async def answer(self, texts: list[str], params: GenerationParameters) -> list[str]:
        """The answers to ``texts``, generated in a batch with other requests' texts.

        Raises:
            RequestError: (503) the queue is full, or no batch took the request within
                ``queue_timeout_s``.
            Exception: whatever generating the batch raised (a CUDA out-of-memory error).
        """
        waiting = self.queued()
        if waiting >= self.limits.max_queue and (self.generating or waiting):
            raise RequestError(
                f"busy: a generation runs and {waiting} request(s) wait "
                f"({flag('max_queue')} {self.limits.max_queue}); retry later",
                503,
            )
        loop = asyncio.get_running_loop()
        request = _Waiting(texts, params, loop.create_future())
        request.expiry = loop.call_later(self.limits.queue_timeout_s, self._expire, request)
        self._waiting.append(request)
        self._arrived.set()
        return await request.future  # cancelled with the awaiting request: its place is freed

    def _expire(self, request: _Waiting) -> None:
        if request.taken or request.future.done():
            return
        self._waiting.remove(request)
        request.future.set_exception(RequestError(
            f"busy: waited {self.limits.queue_timeout_s:g} s for the model "
            f"({flag('queue_timeout_s')}); retry later", 503))  # fmt: skip

    def _limit(self, params: GenerationParameters) -> int:
        return min(self.limits.max_batch_size, params.batch_size)

    def _prune(self) -> list[_Waiting]:
        """The requests still waiting (one whose client went away is dropped)."""
        self._waiting = [w for w in self._waiting if not w.future.done()]
        return self._waiting

    def _full(self) -> bool:
        """Whether the texts waiting with the oldest request's parameters fill a batch."""
        head = self._prune()[0]
        same = [w for w in self._waiting if w.params == head.params]
        return sum(len(w.texts) - w.taken for w in same) >= self._limit(head.params)

    async def run(self) -> None:
        """Form batches and generate them, until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            if not self._prune():  # idle: wait for a request, then a moment for company
                self._arrived.clear()
                await self._arrived.wait()
                await self._gather(loop.time() + self.limits.max_batch_delay_s)
            if self._prune():  # requests that came while the model was busy go at once
                await self._generate(self._take())

    async def _gather(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        while self._prune() and not self._full() and (left := deadline - loop.time()) > 0:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except TimeoutError:
                return

    def _take(self) -> list[tuple[_Waiting, int, int]]:
        """The next batch: texts of the oldest request's parameters, oldest first, each as
        (request, first text, end)."""
        params = self._waiting[0].params
        room = self._limit(params)
        batch = []
        for request in [w for w in self._waiting if w.params == params]:
            if not room:
                break
            start = request.taken
            request.taken = min(len(request.texts), start + room)
            room -= request.taken - start
            batch.append((request, start, request.taken))
            if request.expiry is not None:
                request.expiry.cancel()
            if request.taken == len(request.texts):
                self._waiting.remove(request)
        return batch

    async def _generate(self, batch: list[tuple[_Waiting, int, int]]) -> None:
        texts = [text for request, start, end in batch for text in request.texts[start:end]]
        params = batch[0][0].params
        started = time.perf_counter()
        self.generating = True
        try:
            loop = asyncio.get_running_loop()
            answers = await loop.run_in_executor(self._executor, self._answer, texts, params)
            if len(answers) != len(texts):
                raise RuntimeError(f"{len(answers)} answers to {len(texts)} texts")
        except Exception as error:  # the batch's requests fail; the server goes on
            for request, _, _ in batch:
                if request in self._waiting:
                    self._waiting.remove(request)
                if not request.future.done():
                    request.future.set_exception(error)
            return
        finally:
            self.generating = False
        logger.info("generated %d text(s) of %d request(s) in one batch (%.2f s)", len(texts),
                    len(batch), time.perf_counter() - started)  # fmt: skip
        offset = 0
        for request, start, end in batch:
            request.answers[start:end] = answers[offset : offset + end - start]
            offset += end - start
            request.answered += end - start
            if request.answered == len(request.texts) and not request.future.done():
                request.future.set_result(request.answers)

    def close(self) -> None:
        """Refuse what still waits (the server stops) and let the worker thread go."""
        for request in self._prune():
            request.future.set_exception(RequestError("the server is shutting down", 503))
        self._waiting.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)
