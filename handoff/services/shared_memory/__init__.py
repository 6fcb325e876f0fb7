"""Shared-memory use cases: enqueue writes at lifecycle points, perform them from their own queue with
their own retries, and replay the ones that failed.

Investigate first, persist second: :class:`~.publisher.SharedMemoryPublisher` (the service's lifecycle
listener) only enqueues one message per (handoff, point, backend); :class:`~.worker.SharedMemoryService`
performs it (:mod:`.attempt`: exactly once in effect, by markers), reschedules or gives up
(:mod:`.retry`), re-queues writes a dead worker left (:mod:`.sweeper`) and shows and replays them for
operators (:mod:`.operators`). A backend that is down or rate-limited delays only its own writes: other
backends' messages and the delivery queue never wait for it.
"""
