"""The fixture several test modules share: a fresh evloop loop per test
whose exception handler records each context in ``self.handled``."""

import asyncio
import gc
import unittest

import evloop


class LoopTestCase(unittest.TestCase):
    """One evloop loop per test, closed (and garbage collected) after it."""

    #: Seconds ``run_async`` lets a coroutine run.
    TIMEOUT = 10

    def setUp(self):
        self.loop = evloop.new_event_loop()
        self.handled = []
        self.loop.set_exception_handler(lambda loop, context: self.handled.append(context))

    def tearDown(self):
        self.loop.close()
        gc.collect()

    def run_async(self, coro, timeout=None):
        timeout = self.TIMEOUT if timeout is None else timeout
        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout))
