"""One lock around every ``from_pretrained`` in the serving process.

While transformers builds a model it patches torch process-wide (parameters are created on the
meta device, weight init is skipped); a second model built at the same moment in another thread
gets meta or uninitialised tensors ("Cannot copy out of meta tensor", or an encoder whose weights
are reported MISSING and silently random). Serving loads the classifier (start-up, hot swaps) and
the reply generator in worker threads, so every load takes this lock.
"""

from __future__ import annotations

import threading

LOAD_LOCK = threading.RLock()
