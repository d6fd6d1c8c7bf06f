"""Runs a piece of work off the calling thread while the calling thread delivers its progress,
so the user's callback (and Ctrl-C) run in the caller's thread; an exception there cancels the
work, waits for it to stop (streams cancelled, server memory released), then propagates."""

import queue
import threading

from . import _run


class Queued:
    """Progress events queued for the calling thread (start / deliver from any thread)."""

    error = None

    def __init__(self):
        self.queue = queue.Queue()
        self._on_error = []

    def on_error(self, f):
        self._on_error.append(f)

    def start(self, tensors, nbytes):
        self.queue.put(("start", tensors, nbytes))

    def deliver(self, report):
        self.queue.put(("tensor", report))

    def close(self):
        pass

    def cancel(self):
        for f in self._on_error:
            f()


def pump(start_work, progress, bar):
    """start_work(events) starts the work and returns (wait_done(timeout) -> bool, result(),
    cancel()). Delivers events here until the work is done; returns result()."""
    events = Queued()
    prog = _run.Progress(progress, bar)
    wait_done, result, cancel = start_work(events)
    try:
        while True:
            try:
                ev = events.queue.get(timeout=0.05)
            except queue.Empty:
                if wait_done(0) and events.queue.empty():
                    break
                continue
            if ev[0] == "start":
                prog.start(ev[1], ev[2])
            else:
                prog.emit(ev[1])
        return result()
    except BaseException:
        events.cancel()
        cancel()
        while not wait_done(0.1):
            pass
        raise
    finally:
        prog.close()


def in_thread(fn):
    """(wait_done, result, cancel) for fn() run on a new thread."""
    box = {}
    done = threading.Event()

    def body():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in result()
            box["error"] = e
        finally:
            done.set()

    threading.Thread(target=body, name="rtnq-run", daemon=True).start()

    def result():
        if "error" in box:
            raise box["error"]
        return box["value"]
    return done.wait, result, lambda: None
