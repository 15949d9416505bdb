"""Seeded random scenarios over the retail twin: `python -m tests.conformance.random_runs --seeds N`
(`make conformance SEEDS=N`). Each seed is one short story (a build and a few steps) drawn by
`random.Random(seed)` from the operations the fixed scenarios use; the output lists every step
run and every divergence, and the exit status is 1 when any divergence was not declared.

`--jobs J` splits the seeds into J contiguous shares, each run by its own process with its own
baseline (`make conformance` uses two, one per core here).

A seed that finds a divergence is reproduced with `--seeds 1 --first <seed>`; its steps are
printed, ready to be written down as a fixed scenario (docs/adr/0014-conformance-harness.md).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from random import Random

from tests.conformance.projects import correct_orders
from tests.conformance.scenario import Report, Scenario, build_baseline, run_scenario
from tests.conformance.steps import CALENDAR_START, Change, Step, edit, remove, write

#: Steps after the first build; short stories keep a seed at about half a minute.
STEPS_PER_SEED = 4
EDITABLE = {
    "retail.orders_hourly": ("models/orders_hourly.sql", "count(*)", "count(*) + 1"),
    "retail.sales_daily": ("models/sales_daily.sql", " AS amount", " + 1 AS amount"),
    "retail.morning_report": ("models/morning_report.sql", " AS amount", " + 1 AS amount"),
    "retail.store_totals": ("models/store_totals.sql", " AS amount", " + 1 AS amount"),
}
CITY_TOTALS = """\
MODEL (name retail.city_totals, kind FULL, cron '@daily');
SELECT city, sum(amount)::DECIMAL(14,2) AS amount FROM retail.store_totals GROUP BY 1
"""


def add_column(relative: str, serial: int) -> Change:
    """A non-breaking edit: one more column at the end of the model's SELECT (the models group by
    position, so a column in front would shift their GROUP BY)."""

    def change(folder: Path) -> None:
        path = folder / relative
        text = path.read_text()
        if "\nFROM " not in text:
            raise AssertionError(f"{relative} has no FROM line")
        path.write_text(text.replace("\nFROM ", f", {serial} AS c{serial}\nFROM ", 1))

    return change


def describe(relative: str, serial: int) -> Change:
    """A metadata-only edit: the model's description."""

    def change(folder: Path) -> None:
        path = folder / relative
        text = path.read_text()
        if "description '" in text:
            text = re.sub(r"description '[^']*'", f"description 'rev {serial}'", text)
        else:
            text = text.replace("MODEL (", f"MODEL (description 'rev {serial}', ", 1)
        path.write_text(text)

    return change


class Story:
    """Draws one seed's steps; remembers what the project looks like so every step applies."""

    def __init__(self, seed: int) -> None:
        self.random = Random(seed)
        self.at = CALENDAR_START
        self.serial = 0
        self.city_totals = False
        self.in_dev = False

    def steps(self) -> tuple[Step, ...]:
        steps = [Step("first build", self.at)]
        for _ in range(STEPS_PER_SEED):
            steps.append(self.next_step())
        return tuple(steps)

    def next_step(self) -> Step:
        self.serial += 1
        if self.in_dev:  # a dev plan is followed by its promotion
            self.in_dev = False
            return Step(f"{self.serial}: promote dev to prod", self.advance(0, 2))
        operations: list[Callable[[], Step]] = [
            self.time_passes,
            self.time_passes,
            self.correction,
            self.breaking_edit,
            self.non_breaking_edit,
            self.metadata_edit,
            self.selection,
            self.restatement,
            self.add_or_remove,
            self.dev_plan,
            self.partitioned,
        ]
        return self.random.choice(operations)()

    def advance(self, low: int, high: int) -> object:
        self.at += timedelta(hours=self.random.randint(low, high))
        return self.at

    def time_passes(self) -> Step:
        hours = self.random.choice([1, 5, 18, 24, 7 * 24])
        self.at += timedelta(hours=hours)
        command = self.random.choice(["run", "plan"])
        return Step(f"{self.serial}: {hours} h later ({command})", self.at, command=command)

    def correction(self) -> Step:
        day = (CALENDAR_START - timedelta(days=self.random.randint(1, 6))).date()
        factor = self.random.choice(["-1", "2"])
        model = self.random.choice(["retail.orders_hourly", "retail.sales_daily"])
        return Step(
            f"{self.serial}: orders of {day} x{factor}; restate {model}",
            self.advance(0, 3),
            changes=(correct_orders(str(day), factor),),
            select=(model,),
            restate=True,
        )

    def breaking_edit(self) -> Step:
        model = self.random.choice(sorted(EDITABLE))
        relative, old, new = EDITABLE[model]
        return Step(
            f"{self.serial}: breaking edit of {model}",
            self.advance(0, 6),
            changes=(edit(relative, old, new),),
        )

    def non_breaking_edit(self) -> Step:
        model = self.random.choice(sorted(EDITABLE))
        return Step(
            f"{self.serial}: a column added to {model}",
            self.advance(0, 6),
            changes=(add_column(EDITABLE[model][0], self.serial),),
        )

    def metadata_edit(self) -> Step:
        model = self.random.choice(sorted(EDITABLE))
        return Step(
            f"{self.serial}: description of {model}",
            self.advance(0, 6),
            changes=(describe(EDITABLE[model][0], self.serial),),
        )

    def selection(self) -> Step:
        model = self.random.choice(sorted(EDITABLE))
        command = self.random.choice(["run", "plan"])
        return Step(
            f"{self.serial}: {model} alone ({command})",
            self.advance(1, 24),
            select=(model,),
            command=command,
        )

    def restatement(self) -> Step:
        model = self.random.choice(sorted(EDITABLE))
        return Step(
            f"{self.serial}: restate {model}", self.advance(0, 3), select=(model,), restate=True
        )

    def add_or_remove(self) -> Step:
        self.city_totals = not self.city_totals
        if self.city_totals:
            change = write("models/city_totals.sql", CITY_TOTALS)
            return Step(f"{self.serial}: city_totals added", self.advance(0, 6), changes=(change,))
        change = remove("models/city_totals.sql")
        return Step(f"{self.serial}: city_totals removed", self.advance(0, 6), changes=(change,))

    def dev_plan(self) -> Step:
        self.in_dev = True
        model = self.random.choice(sorted(EDITABLE))
        relative, old, new = EDITABLE[model]
        return Step(
            f"{self.serial}: breaking edit of {model} in dev",
            self.advance(0, 3),
            changes=(edit(relative, old, new),),
            environment="dev",
        )

    def partitioned(self) -> Step:
        at = self.advance(1, 24)
        last = (at - timedelta(days=1)).date()
        first = last - timedelta(days=self.random.randint(0, 2))
        restate = self.random.random() < 0.5
        return Step(
            f"{self.serial}: sales_daily {first}...{last}, partitions on"
            + (", restated" if restate else ""),
            at,
            select=("retail.sales_daily",),
            partitions=True,
            window=(str(first), str(last)),
            restate=restate,
        )


def scenario_for(seed: int) -> Scenario:
    return Scenario(f"seed {seed}", "retail", Story(seed).steps())


def run_seeds(first: int, count: int, root: Path) -> list[Report]:
    """Every seed starts from one first build (the same for all: built once, then copied)."""
    baseline = build_baseline(scenario_for(first), root / "baseline")
    print(baseline.text(), flush=True)
    reports = [baseline]
    for seed in range(first, first + count):
        scenario = scenario_for(seed)
        report = run_scenario(scenario, root / f"seed_{seed}", baseline=root / "baseline")
        print(f"seed {seed}:", *(f"  {step.name}" for step in scenario.steps), sep="\n")
        print(report.text(), flush=True)
        reports.append(report)
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2, help="how many seeds to run")
    parser.add_argument("--first", type=int, default=0, help="the first seed")
    parser.add_argument(
        "--jobs", type=int, default=1, help="processes, each running a contiguous share of seeds"
    )
    args = parser.parse_args(argv)
    if args.jobs > 1 and args.seeds > 1:
        return run_in_parallel(args.first, args.seeds, args.jobs)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="conformance_") as root:
        reports = run_seeds(args.first, args.seeds, Path(root))
    steps = sum(r.steps_run for r in reports)
    divergences = sum(len(r.divergences) for r in reports)
    failing = [r.scenario for r in reports if r.divergences]
    elapsed = time.monotonic() - started
    seeds = len(reports) - 1  # the first report is the shared baseline build
    print(
        f"\n{seeds} seeds, {steps} steps run, {divergences} undeclared divergences"
        + (f" (in {', '.join(failing)})" if failing else "")
        + f", {elapsed:.0f} s ({elapsed / max(seeds, 1):.1f} s per seed, shared build included)"
    )
    return 1 if divergences else 0


def run_in_parallel(first: int, count: int, jobs: int) -> int:
    """`jobs` processes of this module, each with its share of the seeds and its own baseline;
    their lines are printed as they come, prefixed with the job, then one total."""
    shares = [count // jobs + (1 if j < count % jobs else 0) for j in range(jobs)]
    starts = [first + sum(shares[:j]) for j in range(jobs)]
    started = time.monotonic()
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.conformance.random_runs"]
            + ["--seeds", str(share), "--first", str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for share, start in zip(shares, starts, strict=True)
        if share
    ]
    totals: list[str] = []

    def relay(job: int, process: subprocess.Popen[str]) -> None:
        for line in process.stdout or ():
            if SUMMARY.match(line):
                totals.append(line.strip())
            print(f"[job {job}] {line}", end="", flush=True)

    relays = [
        threading.Thread(target=relay, args=(j, p), daemon=True) for j, p in enumerate(processes)
    ]
    for thread in relays:
        thread.start()
    codes = [process.wait() for process in processes]
    for thread in relays:
        thread.join()
    summed = [sum(int(m.group(k)) for m in map(SUMMARY.match, totals) if m) for k in (1, 2, 3)]
    elapsed = time.monotonic() - started
    print(
        f"\n{summed[0]} seeds, {summed[1]} steps run, {summed[2]} undeclared divergences, "
        f"{elapsed:.0f} s on {len(processes)} jobs"
        + (
            ""
            if len(totals) == len(processes)
            else f" ({len(processes) - len(totals)} job(s) ended early)"
        )
    )
    return 1 if any(codes) or len(totals) != len(processes) else 0


#: The last line of a job: "N seeds, S steps run, D undeclared divergences..."
SUMMARY = re.compile(r"^(\d+) seeds, (\d+) steps run, (\d+) undeclared divergences")


if __name__ == "__main__":
    sys.exit(main())
