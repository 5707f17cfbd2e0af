"""Many people at once: N browser sessions against the real Streamlit server.

    python -m benchmarks.load [--sessions 1 4 8] [--steps 3] [--deadline 240] [--out benchmarks/load.json]

For each N, a fresh server (``streamlit run streamlit_app.py`` on a loopback port) and one
headless Chromium holding N browser contexts, each its own Streamlit session, all driven at
once. Every session opens the app, then walks Data, Train, Evaluate and Predict through the
sidebar ``--steps`` times. First, two sessions (one when N = 1) train a short model: 80
images at 64 px on the Data form, one epoch on the Train form. When N >= 4 a third session
tries to train while they do, which the server's job limit (``MLCORE_MAX_JOBS``, default 2)
should refuse. A session with a trained model also moves the Evaluate threshold slider and
uploads three photos on Predict at every step. The real dataset is used when it is found
(``MLCORE_DATA_DIR``), otherwise the generated demo set.

Latency is the time from an action (a click, key presses, files chosen) to the page being
settled: the element the action should bring is shown and Streamlit's running indicator is
gone. An error is a Streamlit exception box on the page, a page that did not load, or an
action that did not settle within a minute; a refusal is the app saying no in words. Memory
is the server process's resident set, children included, polled twice a second, and its
kernel high-water mark. Each N stops by itself: after ``--deadline`` seconds no session
starts another action (it counts as cut short). Chromium runs on the same machine as the
server and takes CPU from it, as the sessions' own people would not: on a small machine the
latencies are an upper bound.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import machine, median
from scripts.app_server import CHROMIUM_ARGS, chromium_path, peak_rss_mb, running_app

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "load.json"
ACTION_TIMEOUT = 60.0  # s: an action not settled by then is an error
MIN_ACTION = 5.0  # s: with less time left before the deadline, a session stops
RSS_POLL = 0.5  # s
TRAIN_IMAGES, TRAIN_SIZE = 80, 64
PHOTOS_PER_UPLOAD = 3
# Shown while a script run is requested or running; on leaving it fades out for 200 ms with this class.
RUNNING = '[data-testid="stStatusWidget"]:not(.StatusWidget-exit)'
# The job limit's refusal, or the memory guard's.
LIMIT_REFUSAL = re.compile(r"already training \d+ model\(s\), its limit|would need about [\d,]+ MB")
SOURCES = {True: "Real photos (cats_and_dogs_filtered)", False: "Generated demo set (synthetic, offline)"}


class OutOfTime(Exception):
    """The deadline came before the session's work was done."""


@dataclasses.dataclass(frozen=True)
class Plan:
    """What every session of one run does."""

    steps: int
    deadline: float
    real: bool
    photos: tuple[str, ...]
    chromium: str


def roles(sessions: int) -> list[str]:
    """Two sessions train (one alone); with four or more, a third tries to, and should be refused."""
    trainers = ["trainer"] * min(sessions, 2)
    extra = ["extra"] if sessions >= 4 else []
    return (trainers + extra + ["visitor"] * sessions)[:sessions]


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


@dataclasses.dataclass
class Tally:
    """What the sessions of one N saw. One event loop drives them all, so no locks."""

    trainers: int
    latencies: dict[str, list[float]] = dataclasses.field(default_factory=dict)  # ms, by action
    errors: list[str] = dataclasses.field(default_factory=list)
    refusals: int = 0
    opened: int = 0
    cut_short: int = 0
    training_seconds: list[float] = dataclasses.field(default_factory=list)
    tried: int = 0
    trainers_tried: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    def trainer_tried(self) -> None:
        """A trainer's start click settled (or failed): the third session may try once all have."""
        self.tried += 1
        if self.tried >= self.trainers:
            self.trainers_tried.set()

    def error(self, index: int, role: str, action: str, message: str) -> None:
        self.errors.append(f"session {index} ({role}), {action}: {message}")

    def row(self, sessions: int, wall: float, peak_mb: float) -> dict:
        every = [ms for values in self.latencies.values() for ms in values]
        return {
            "sessions_requested": sessions,
            "sessions": self.opened,
            "interactions": len(every),
            "p50_ms": median(every) if every else None,
            "p95_ms": percentile(every, 95),
            "refusals": self.refusals,
            "errors": len(self.errors),
            "error_notes": self.errors[:20],
            "cut_short": self.cut_short,
            "training_seconds": [round(s, 1) for s in self.training_seconds],
            "by_action": {
                name: {
                    "count": len(values),
                    "p50_ms": median(values),
                    "p95_ms": percentile(values, 95),
                    "max_ms": max(values),
                }
                for name, values in sorted(self.latencies.items())
            },
            "peak_rss_mb": round(peak_mb, 1),
            "wall_s": round(wall, 1),
        }


def brief(error: Exception) -> str:
    """Playwright's message in one line: what failed, and what it was waiting for."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    waiting = next((line for line in lines if "waiting for" in line), "")
    return " ".join(filter(None, [lines[0] if lines else type(error).__name__, waiting]))[:300]


def shown(locator):
    """A settle check: ``locator`` (its first match) is visible."""
    from playwright.async_api import expect

    return lambda ms: expect(locator.first).to_be_visible(timeout=ms)


def valued(locator, value: str):
    """A settle check: the slider ``locator`` shows ``value`` (the server has answered)."""
    from playwright.async_api import expect

    return lambda ms: expect(locator).to_have_value(value, timeout=ms)


class Session:
    """One browser context: one person, one Streamlit session."""

    def __init__(self, index: int, role: str, page, url: str, tally: Tally, plan: Plan, deadline: float):
        self.index, self.role, self.page, self.url = index, role, page, url
        self.tally, self.plan, self.deadline = tally, plan, deadline
        self.has_model = False
        self.clicked_start = 0.0  # when this session asked to train

    async def act(self, name: str, action, *checks) -> bool:
        """One timed interaction: run ``action``, then wait until the page is settled. Its latency,
        or the error, goes into the tally; returns whether it settled without an exception box."""
        from playwright.async_api import Error

        limit = min(ACTION_TIMEOUT, self.deadline - time.monotonic())
        if limit < MIN_ACTION:
            raise OutOfTime
        started = time.perf_counter()
        try:
            await action()
            await self.settle(checks, time.monotonic() + limit)
        except (AssertionError, Error) as error:
            if limit < ACTION_TIMEOUT:  # cut by the deadline, not slow by its own measure
                raise OutOfTime from error
            self.error(name, f"{brief(error)} ({await self.situation()})")
            return False
        elapsed = (time.perf_counter() - started) * 1000
        exceptions = self.page.get_by_test_id("stException")
        if await exceptions.count():
            self.error(name, "exception box: " + " ".join((await exceptions.first.inner_text()).split())[:300])
            return False
        self.tally.latencies.setdefault(name, []).append(elapsed)
        return True

    async def settle(self, checks, end: float) -> None:
        """Every check holds, then no script run is pending (the checks first: the running
        indicator only shows once the browser has asked for a run), all before ``end``."""

        def left_ms() -> float:
            return max(1.0, end - time.monotonic()) * 1000

        for check in checks:
            await check(left_ms())
        await self.page.locator(RUNNING).first.wait_for(state="hidden", timeout=left_ms())

    async def situation(self) -> str:
        """What the page showed when an action failed: still running or not, exception boxes and messages."""
        running = "a script run still pending" if await self.page.locator(RUNNING).count() else "no run pending"
        texts = []
        for test_id in ("stException", "stAlert"):
            texts += await self.page.get_by_test_id(test_id).all_inner_texts()
        messages = " | ".join(" ".join(text.split()) for text in texts)
        return f"{running}; messages: {messages or 'none'}"[:400]

    def error(self, action: str, message: str) -> None:
        self.tally.error(self.index, self.role, action, message)

    async def open(self, title: str, *checks) -> bool:
        """Click a page in the sidebar navigation; settled when its heading (and ``checks``) show."""
        link = self.page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True)
        heading = self.page.get_by_role("heading", name=title, exact=True)
        return await self.act(f"open {title}", link.click, shown(heading), *checks)

    async def press(self, slider, key: str, times: int) -> None:
        await slider.focus()
        for _ in range(times):
            await self.page.keyboard.press(key)

    async def choose_small_data(self) -> bool:
        """The Data form: few images at 64 px, so that training is short."""
        page = self.page
        if not await self.open("Data"):
            return False
        await page.get_by_text(SOURCES[self.plan.real]).click()
        await page.get_by_label("Number of images").fill(str(TRAIN_IMAGES))
        size = page.get_by_test_id("stSlider").filter(has_text="Image size (pixels)").get_by_role("slider")
        await self.press(size, "ArrowLeft", 2)  # 128 -> 96 -> 64 px
        current = page.get_by_test_id("stMarkdown").filter(has_text=re.compile(rf"^Current data: .* {TRAIN_SIZE} px "))
        apply = page.get_by_role("button", name="Apply settings")
        return await self.act("apply data settings", apply.click, shown(current))

    async def start_training(self) -> str:
        """Submit the Train form for one epoch: ``training``, ``refused`` or ``failed``."""
        page = self.page
        if not await self.open("Train"):
            return "failed"
        epochs = page.get_by_test_id("stSlider").filter(has_text="Epochs").get_by_role("slider")
        await self.press(epochs, "ArrowLeft", int(await epochs.input_value()) - 1)
        refusal = page.get_by_text(LIMIT_REFUSAL)
        answer = page.get_by_test_id("stProgress").or_(refusal).or_(self.done_button())
        start = page.get_by_role("button", name="Start training")
        self.clicked_start = time.perf_counter()
        if not await self.act("start training", start.click, shown(answer)):
            return "failed"
        if await refusal.count():
            self.tally.refusals += 1
            return "refused"
        return "training"

    def done_button(self):
        return self.page.get_by_role("button", name="Download the run bundle (.zip)")

    async def wait_for_model(self) -> None:
        """Stay on the Train page, as its live progress redraws every second, until the run is kept."""
        from playwright.async_api import expect

        failed = self.page.get_by_text("Training failed")
        try:
            await expect(self.done_button().or_(failed).first).to_be_visible(
                timeout=max(1.0, self.deadline - time.monotonic()) * 1000
            )
        except AssertionError as error:
            raise OutOfTime from error
        if await failed.count():
            self.error("training", " ".join((await failed.first.inner_text()).split())[:300])
            return
        self.has_model = True
        self.tally.training_seconds.append(time.perf_counter() - self.clicked_start)

    async def train(self) -> None:
        """Trainers train; the third session waits until they have started, then tries too."""
        if self.role == "trainer":
            try:
                outcome = await self.choose_small_data() and await self.start_training()
            finally:
                self.tally.trainer_tried()
        else:
            prepared = await self.choose_small_data()
            try:
                await asyncio.wait_for(self.tally.trainers_tried.wait(), self.deadline - time.monotonic())
            except TimeoutError as error:
                raise OutOfTime from error
            outcome = prepared and await self.start_training()
        if outcome == "training":
            await self.wait_for_model()

    async def move_threshold(self, step: int) -> None:
        """The global threshold slider one step (0.01) up, then down; the per-label sliders follow.
        One key press: each press sends its value and reruns the page, as a drag does once, on release."""
        page = self.page
        sliders = page.get_by_test_id("stSlider")
        global_ = sliders.filter(has_text="Global threshold").get_by_role("slider")
        first_label = sliders.filter(has_text="Threshold for").first.get_by_role("slider")
        up = step % 2 == 0
        target = round(float(await global_.input_value()) + (0.01 if up else -0.01), 2)
        key = "ArrowRight" if up else "ArrowLeft"
        await self.act("move threshold", lambda: self.press(global_, key, 1), valued(first_label, f"{target:g}"))

    async def upload(self, step: int) -> None:
        """Three new photos in the Predict uploader (they add to the ones there)."""
        page = self.page
        summary = page.get_by_text(re.compile(r"^[\d,]+ file\(s\): "))
        before = int((await summary.first.inner_text()).split()[0].replace(",", "")) if await summary.count() else 0
        start = ((self.index * self.plan.steps + step) * PHOTOS_PER_UPLOAD) % len(self.plan.photos)
        files = [self.plan.photos[(start + i) % len(self.plan.photos)] for i in range(PHOTOS_PER_UPLOAD)]
        total = before + len(files)
        scored = page.get_by_text(re.compile(rf"^{total:,} file\(s\): {total:,} predicted"))
        dropzone = page.get_by_test_id("stFileUploaderDropzoneInput").first
        await self.act("upload photos", lambda: dropzone.set_input_files(files), shown(scored))

    async def step(self, step: int) -> None:
        """One walk through the four pages; with a model, a slider move and an upload too."""
        await self.open("Data")
        await self.open("Train")
        if not self.has_model:
            await self.open("Evaluate")
            await self.open("Predict")
            return
        if await self.open("Evaluate", shown(self.page.get_by_text("Classification report"))):
            await self.move_threshold(step)
        if await self.open("Predict", shown(self.page.get_by_test_id("stFileUploaderDropzone"))):
            await self.upload(step)

    async def run(self) -> None:
        heading = self.page.get_by_role("heading", name="Data", exact=True)
        if not await self.act("open app", lambda: self.page.goto(self.url), shown(heading)):
            if self.role == "trainer":  # the third session must not wait for a trainer that never tries
                self.tally.trainer_tried()
            return  # without the app, every later action would only time out
        self.tally.opened += 1
        if self.role != "visitor":
            await self.train()
        for step in range(self.plan.steps):
            await self.step(step)


async def run_session(browser, index: int, role: str, url: str, tally: Tally, plan: Plan, deadline: float) -> None:
    from playwright.async_api import Error

    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = await context.new_page()
        page.set_default_timeout(ACTION_TIMEOUT * 1000)
        await Session(index, role, page, url, tally, plan, deadline).run()
    except OutOfTime:
        tally.cut_short += 1
    except Error as error:  # a step between timed actions (filling a field, reading a value) failed
        tally.error(index, role, "between actions", brief(error))
    except asyncio.CancelledError:  # the backstop in drive() ran out
        tally.cut_short += 1
        raise
    finally:
        await context.close()


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it (Streamlit may start helpers; TensorFlow threads are not processes)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(current := todo.pop())
        todo += children.get(current, [])
    return tree


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants now, from /proc (Linux reports KiB)."""
    total = 0
    for member in process_tree(pid):
        try:
            lines = Path(f"/proc/{member}/status").read_text().splitlines()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in lines if line.startswith("VmRSS:")), 0)
    return total / 1024


async def watch_memory(pid: int, peak: list[float]) -> None:
    """Keep ``peak[0]`` at the highest resident memory seen, until cancelled."""
    while True:
        peak[0] = max(peak[0], rss_mb(pid))
        await asyncio.sleep(RSS_POLL)


async def drive(url: str, pid: int, sessions: int, plan: Plan) -> dict:
    """Every session at once in one Chromium; returns the N's report row (memory without the high-water mark)."""
    from playwright.async_api import async_playwright

    people = roles(sessions)
    tally = Tally(trainers=people.count("trainer"))
    peak = [0.0]
    watcher = asyncio.create_task(watch_memory(pid, peak))
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=plan.chromium, args=CHROMIUM_ARGS)
        started = time.monotonic()
        deadline = started + plan.deadline
        tasks = [run_session(browser, i, role, url, tally, plan, deadline) for i, role in enumerate(people)]
        with contextlib.suppress(TimeoutError):  # every wait is bounded by the deadline; this is the backstop
            await asyncio.wait_for(asyncio.gather(*tasks), plan.deadline + 2 * ACTION_TIMEOUT)
        wall = time.monotonic() - started
        await browser.close()
    watcher.cancel()
    return tally.row(sessions, wall, peak[0])


def measure(sessions: int, plan: Plan, scratch: Path) -> dict:
    """One N on a fresh server with its own run store, so memory and jobs start from nothing."""
    log = scratch / f"server-{sessions}.log"
    env = {"MLCORE_RUN_STORE": str(scratch / f"runs-{sessions}"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    with running_app(log, env=env) as (url, process):
        row = asyncio.run(drive(url, process.pid, sessions, plan))
        row["peak_rss_mb"] = round(max(row["peak_rss_mb"], peak_rss_mb(process.pid) or 0.0), 1)
    row["server_tracebacks"] = log.read_text(errors="replace").count("Traceback (most recent call last)")
    return row


def photos(real_root: Path | None, scratch: Path) -> tuple[str, ...]:
    """Files to upload: the real validation photos, cats and dogs in turn, or drawn demo scenes."""
    if real_root is not None:
        cats = sorted((real_root / "validation" / "cats").glob("*.jpg"))
        dogs = sorted((real_root / "validation" / "dogs").glob("*.jpg"))
        return tuple(str(path) for pair in zip(cats, dogs, strict=False) for path in pair)
    from PIL import Image

    from mlcore import datasets

    paths = []
    for index, scene in enumerate(datasets.demo_scenes(24, 256, seed=7)):
        paths.append(scratch / f"scene-{index:02d}.png")
        Image.fromarray(scene).save(paths[-1])
    return tuple(str(path) for path in paths)


def max_jobs() -> int:
    """The server's training limit, read from the environment the server inherits."""
    from app import settings

    return settings.max_jobs()


def render(results: dict) -> str:
    cpu = results["machine"]
    plan = results["plan"]
    lines = [
        "## Load: concurrent browser sessions",
        "",
        f"`python -m benchmarks.load`, {cpu['cpu']}, {cpu['usable_cpus']} usable CPUs, {results['date']}; "
        f"{plan['data']}. N sessions at once in one headless Chromium on the same machine, against a fresh "
        f"`streamlit run` per N. Each session opens the app, then walks Data, Train, Evaluate and Predict "
        f"{plan['steps']} time(s); two sessions (one at N = 1) first train one epoch on {plan['train_images']} "
        f"images at {plan['train_size']} px, and at N >= 4 a third tries to while they do (the server allows "
        f"{plan['max_jobs']} training job(s) at once). With a model, a session also moves the Evaluate threshold "
        f"and uploads {plan['photos_per_upload']} photos on Predict at every step. Latency: from the action to the "
        "page settled (the expected element shown, Streamlit's running indicator gone); the wait for training to end "
        f"is not an interaction. Deadline {plan['deadline_s']:.0f} s per N. Peak RSS: the server process and its "
        "children.",
        "",
        "| N | sessions | interactions | p50 ms | p95 ms | refusals | errors | peak RSS MB | wall s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["rows"]:
        p50, p95 = (f"{row[key]:.0f}" if row[key] is not None else "–" for key in ("p50_ms", "p95_ms"))
        lines.append(
            f"| {row['sessions_requested']} | {row['sessions']} | {row['interactions']} | {p50} | {p95} | "
            f"{row['refusals']} | {row['errors']} | {row['peak_rss_mb']:.0f} | {row['wall_s']:.0f} |"
        )
    lines.append("")
    for row in results["rows"]:
        lines.append(f"- N = {row['sessions_requested']}: {_details(row)}")
    return "\n".join(lines) + "\n"


def _details(row: dict) -> str:
    """The slowest actions, the trainings and anything that went wrong, for one N."""
    slowest = sorted(row["by_action"].items(), key=lambda item: -item[1]["p95_ms"])[:3]
    parts = (
        ["slowest p95: " + ", ".join(f"{name} {stats['p95_ms']:.0f} ms" for name, stats in slowest)] if slowest else []
    )
    if row["training_seconds"]:
        parts.append("training to a kept run " + ", ".join(f"{s:.0f}" for s in row["training_seconds"]) + " s")
    if row["cut_short"]:
        parts.append(f"{row['cut_short']} session(s) cut short by the deadline")
    if row["server_tracebacks"]:
        parts.append(f"{row['server_tracebacks']} traceback(s) in the server log")
    parts += [f"error: {note}" for note in row["error_notes"][:3]]
    return "; ".join(parts) + "."


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.load", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 4, 8], help="the Ns to run, one after another")
    parser.add_argument("--steps", type=int, default=3, help="walks through the four pages per session")
    parser.add_argument("--deadline", type=float, default=240.0, help="seconds per N before sessions stop")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    chromium = chromium_path()
    if chromium is None:
        sys.exit("the load test needs Chromium: install Debian's 'chromium' package or set CHROMIUM_PATH")

    from mlcore import datasets

    real_root = datasets.find_real_dataset()
    results = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": []}
    with tempfile.TemporaryDirectory(prefix="mlcore-load-") as scratch_name:
        scratch = Path(scratch_name)
        plan = Plan(args.steps, args.deadline, real_root is not None, photos(real_root, scratch), chromium)
        results["plan"] = {
            "steps": args.steps,
            "deadline_s": args.deadline,
            "data": "the real cats_and_dogs_filtered photos" if plan.real else "the generated demo set",
            "max_jobs": max_jobs(),
            "train_images": TRAIN_IMAGES,
            "train_size": TRAIN_SIZE,
            "photos_per_upload": PHOTOS_PER_UPLOAD,
        }
        for sessions in args.sessions:
            log(f"{sessions} session(s)")
            results["rows"].append(measure(sessions, plan, scratch))
            args.out.write_text(json.dumps(results, indent=1))
    print(render(results))


if __name__ == "__main__":
    main()
