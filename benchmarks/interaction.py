"""The Evaluate page's rerun after a threshold change, with 1,000 test predictions.

    python -m benchmarks.interaction --repeats 20

A real app session (Streamlit's AppTest runs ``streamlit_app.py`` in-process, as
the server does) applies the real dataset, trains the seed network for one
epoch on 64 images through the Train form, and opens Evaluate, which then holds
the probabilities of the 1,000 official validation images. Each timed step
moves the global threshold slider and reruns the script; the time is the whole
rerun as AppTest sees it (script plus element serialisation), so an upper bound
on the server's script time. Every model call is counted while the sliders move.
"""

from __future__ import annotations

import argparse
import time

from benchmarks.common import emit, median

RUN_TIMEOUT = 300


def trained_session():
    from streamlit.testing.v1 import AppTest

    from app import state
    from benchmarks.common import ROOT

    def key(group: str, name: str) -> str:
        return state.widget_key(group, name, at.session_state)

    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=RUN_TIMEOUT).run()
    at.switch_page("pages/data.py").run()
    at.radio(key=key("data", "source")).set_value("real")
    at.number_input(key=key("data", "count")).set_value(64)
    at.select_slider(key=key("data", "size")).set_value(128)
    at.button(key=key("data", "apply")).click().run()
    at.switch_page("pages/train.py").run()
    at.slider(key=key("train", "epochs")).set_value(1)
    at.radio(key=key("train", "architecture")).set_value("seed")
    at.button(key=key("train", "start")).click().run()
    deadline = time.monotonic() + RUN_TIMEOUT
    while state.job(at.session_state) is not None:
        if at.exception or time.monotonic() > deadline:
            raise RuntimeError(f"training in the app did not finish: {at.exception}")
        time.sleep(0.5)
        at.run()
    return at.switch_page("pages/evaluate.py").run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    from app import compat

    with compat.navigation_mode():  # as a running server navigates (app/compat.py says why)
        measure(args.repeats)


def measure(repeats: int) -> None:
    import keras

    from app import state
    from mlcore import predict

    at = trained_session()
    if at.exception:
        raise RuntimeError(f"the Evaluate page failed: {at.exception}")
    test_images = len(state.trained_run(at.session_state).evaluation.test.y_true)
    calls = {"model": 0}
    original_call, original_proba = keras.Model.__call__, predict.predict_proba

    def counted_call(self, *a, **k):
        calls["model"] += 1
        return original_call(self, *a, **k)

    def counted_proba(*a, **k):
        calls["model"] += 1
        return original_proba(*a, **k)

    keras.Model.__call__, predict.predict_proba = counted_call, counted_proba
    slider_key = next(s.key for s in at.slider if s.label.startswith("Global"))
    values = [round(0.30 + 0.02 * (i % 20), 2) for i in range(repeats)]
    times = []
    for value in values:
        at.slider(key=slider_key).set_value(value)
        started = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - started)
        if at.exception:
            raise RuntimeError(f"the Evaluate page failed: {at.exception}")
    shown = next(s.value for s in at.slider if s.label.startswith("Threshold for dog"))
    emit(
        {
            "test_images": test_images,
            "rerun_ms": [round(1000 * t, 1) for t in times],
            "median_ms": round(1000 * median(times), 1),
            "model_calls": calls["model"],
            "dog_threshold_after": shown,
            "last_value": values[-1],
        }
    )


if __name__ == "__main__":
    main()
