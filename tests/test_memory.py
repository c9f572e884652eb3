"""Server memory comes back when sessions end: 50 sessions on the real zoo presets, in a
child process so the measurement is the server's alone."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

DRIVER = textwrap.dedent(
    """
    import faulthandler
    import json
    import sys
    import time
    faulthandler.dump_traceback_later(540, exit=True)  # a hang prints every thread's stack before the timeout
    from workbench.runtime.memory import resident_bytes
    from workbench.ui.controller import Controller

    EXPRESSIONS = {
        "unlearning-lora": "-lam*toxic",
        "distribution-generalization-lora": "lam*sentiment_s0 + (1-lam)*sentiment_s1",
    }

    def wave(controller, prefix, count):
        sessions = []
        for index in range(count):
            preset = list(EXPRESSIONS)[index % 2]
            session = f"{prefix}{index}"
            controller.start(session, preset=preset)
            controller.recompose(session, EXPRESSIONS[preset], {"lam": round(-1 + 0.04 * index, 2)})
            sessions.append(session)
        peak = resident_bytes()
        for session in sessions:
            controller.release(session)
        return peak

    controller = Controller()
    wave(controller, "warm", 6)
    warm = resident_bytes()
    peaks = []
    for w in range(2):
        started = time.monotonic()
        peaks.append(wave(controller, f"wave{w}-", 25))
        print(f"wave {w}: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    print(json.dumps({"warm": warm, "peaks": peaks, "after": resident_bytes()}))
    """
)


@pytest.mark.e2e
def test_memory_comes_back_after_fifty_sessions() -> None:
    done = subprocess.run([sys.executable, "-c", DRIVER], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-6000:]
    rss = json.loads(done.stdout.strip().splitlines()[-1])
    assert max(rss["peaks"]) > rss["warm"] * 1.2  # the sessions did hold memory while open
    assert rss["after"] <= rss["warm"] * 1.10, rss
