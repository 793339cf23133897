#!/usr/bin/env python3
"""The peer solver: one instance of the canonical problem solved by OR-Tools CP-SAT.

    cpsat_peer.py INSTANCE.json [--time-limit 1] [--workers 2] [--plan OUT.json]

Reads a `switchboard-instance/1` (../shared/spec/problem.md), models every
rule of it for CP-SAT, solves with the given time limit and workers, writes
the plan if asked, scores it with the judge (`check_plan.py`'s own `check`)
and prints one JSON line:

    {"objective": 2519.28, "feasible": true, "status": "FEASIBLE",
     "bound": 2540.1, "seconds": 1.02, "rows": 1234, "pairs": 5678}

The model (all integers; hours in thousandths, rounded against the plan:
hours up, capacities down, so a CP-SAT solution is always feasible for the
judge, at worst a little less free than the exact rules):

- `x[v,t]` for every eligible pair (rule 1, asked of the judge's own
  `eligible`), `y[t]` a task is complete, `f[p,t]` cents from a pledge that
  may fund the task;
- rule 2: `sum x[.,t] = slots * y[t]`; rule 3: `sum f[.,t] = money * y[t]`,
  `sum f[p,.] <= amount`; rule 4: `y[t] <= y[d]` for each dependency not
  done (`y[t] = 0` if it is neither done nor a task); rule 6: pins are 1;
- rule 5 as interval rows: for each volunteer and each `[a, b]` of a start
  and a deadline of its eligible flexible tasks, the hours inside at most
  `cap(v, a, b)`, written only where all the eligible hours inside could
  exceed it, one row per distinct set of tasks (the tightest);
- rule 5b: the volunteer's shifts as optional intervals in one no-overlap;
- rule 5c (instances with a shift): per volunteer and ISO week, the week's
  hours at most `hours_per_week`.

The objective maximises the sum of impact (in thousandths) over complete
tasks. The time limit covers solving only; building the model is reported
apart (`build_seconds`), as the switchboard's own figure covers both.
"""

import argparse
import json
import math
import os
import sys
import time
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED_BENCH = os.path.join(HERE, "..", "..", "..", "shared", "bench")
sys.path.insert(0, SHARED_BENCH)

import check_plan  # noqa: E402  (the judge: eligibility, windows, weeks, scoring)
from ortools.sat.python import cp_model  # noqa: E402

SCALE = 1000  # thousandths of an hour, of impact
EPS = check_plan.EPS


def up(value):
    return int(math.ceil(value * SCALE - 1e-9))


def down(value):
    return int(math.floor(value * SCALE + 1e-9))


class Model:
    def __init__(self, inst):
        self.inst = inst
        self.m = cp_model.CpModel()
        self.x = {}
        self.y = {}
        self.f = {}
        self.rows = 0

    def build(self):
        inst, m = self.inst, self.m
        open_tasks = [t for t in inst.task if t not in inst.done]
        pinned = set(inst.pinned)
        for t in open_tasks:
            self.y[t] = m.NewBoolVar(f"y[{t}]")
        for v in inst.vol:
            for t in open_tasks:
                if inst.task[t]["slots"] > 0 and ((v, t) in pinned or not inst.eligible(v, t)):
                    self.x[v, t] = m.NewBoolVar(f"x[{v},{t}]")
        by_task = defaultdict(list)
        by_volunteer = defaultdict(list)
        for (v, t), var in self.x.items():
            by_task[t].append(var)
            by_volunteer[v].append(t)
        for t in open_tasks:
            task = inst.task[t]
            if task["slots"] == 0 and task.get("money_cents", 0) <= 0:
                m.Add(self.y[t] == 0)  # nothing to staff or fund: the judge never counts it complete
            m.Add(sum(by_task[t]) == task["slots"] * self.y[t])
            self.rows += 1
            for d in task.get("depends_on", []):
                if d in inst.done:
                    continue
                if d in self.y:
                    m.Add(self.y[t] <= self.y[d])
                else:
                    m.Add(self.y[t] == 0)
                self.rows += 1
        self._money(open_tasks)
        for v, t in pinned:
            if (v, t) in self.x:
                m.Add(self.x[v, t] == 1)
            else:
                m.Add(0 == 1)  # a pin on a done or unknown task: no feasible plan
        for v, tasks in by_volunteer.items():
            self._time(v, tasks)
        m.Maximize(sum(round(inst.task[t]["impact"] * SCALE) * self.y[t] for t in open_tasks))

    def _money(self, open_tasks):
        inst, m = self.inst, self.m
        gifts = defaultdict(list)
        for t in open_tasks:
            money = inst.task[t].get("money_cents", 0)
            if money <= 0:
                continue
            for p in inst.pledge:
                if inst.pledge_fits(p, t):
                    cap = min(money, inst.pledge[p]["amount_cents"])
                    self.f[p, t] = m.NewIntVar(0, cap, f"f[{p},{t}]")
                    gifts[p].append(self.f[p, t])
            m.Add(sum(self.f[p, t] for p in inst.pledge if (p, t) in self.f) == money * self.y[t])
            self.rows += 1
        for p, variables in gifts.items():
            m.Add(sum(variables) <= inst.pledge[p]["amount_cents"])
            self.rows += 1

    def _time(self, v, tasks):
        inst, m = self.inst, self.m
        flexible = [t for t in tasks if t not in inst.shift]
        starts = sorted({inst.win[t][0] for t in flexible})
        ends = sorted({inst.win[t][1] for t in flexible})
        tightest = {}
        for a in starts:
            # Tasks starting at or after a, by deadline: as b grows, the set inside only grows.
            later = sorted((inst.win[t][1], t) for t in flexible if inst.win[t][0] >= a - EPS)
            inside, need, taken = [], 0.0, 0
            for b in ends:
                if b <= a:
                    continue
                while taken < len(later) and later[taken][0] <= b + EPS:
                    inside.append(later[taken][1])
                    need += inst.task[later[taken][1]]["hours"]
                    taken += 1
                if not inside:
                    continue
                have = inst.cap(v, a, b)
                if need <= have + EPS:
                    continue  # cannot be overfull, whatever is chosen
                key = tuple(inside)
                if key not in tightest or have < tightest[key]:
                    tightest[key] = have
        for inside, have in tightest.items():
            m.Add(sum(up(inst.task[t]["hours"]) * self.x[v, t] for t in inside) <= down(have + EPS))
            self.rows += 1
        if not inst.shift:
            return
        shifts = [t for t in tasks if t in inst.shift]
        if len(shifts) > 1:
            intervals = []
            for t in shifts:
                start, end = inst.shift[t]
                lo, hi = round(start * 60), round(end * 60)
                intervals.append(m.NewOptionalFixedSizeIntervalVar(lo, hi - lo, self.x[v, t], f"i[{v},{t}]"))
            m.AddNoOverlap(intervals)
            self.rows += 1
        week = defaultdict(list)
        total = defaultdict(float)
        for t in tasks:
            for k, h in inst.week_hours(t):
                week[k].append((up(h), self.x[v, t]))
                total[k] += h
        per_week = inst.vol[v]["hours_per_week"]
        for k, terms in week.items():
            if total[k] > per_week + EPS:
                m.Add(sum(c * var for c, var in terms) <= down(per_week + EPS))
                self.rows += 1

    def plan(self, solver):
        assignments = [{"volunteer": v, "task": t} for (v, t), var in self.x.items() if solver.Value(var)]
        funding = [{"pledge": p, "task": t, "amount_cents": solver.Value(var)}
                   for (p, t), var in self.f.items() if solver.Value(var) > 0]
        return {"format": "switchboard-plan/1", "assignments": assignments, "funding": funding}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("instance")
    parser.add_argument("--time-limit", type=float, default=1.0, help="seconds of solving")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--plan", help="write the plan here")
    args = parser.parse_args()
    with open(args.instance) as handle:
        inst = check_plan.Instance(json.load(handle))
    started = time.monotonic()
    model = Model(inst)
    model.build()
    build_seconds = time.monotonic() - started
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = args.time_limit
    solver.parameters.num_workers = args.workers
    started = time.monotonic()
    status = solver.Solve(model.m)
    seconds = time.monotonic() - started
    result = {"status": solver.StatusName(status), "seconds": round(seconds, 3),
              "build_seconds": round(build_seconds, 3), "rows": model.rows, "pairs": len(model.x)}
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        plan = model.plan(solver)
        if args.plan:
            with open(args.plan, "w") as handle:
                json.dump(plan, handle)
        errors, objective, _, _ = check_plan.check(inst, plan)
        result.update({"feasible": not errors, "objective": round(objective, 2) if not errors else 0.0,
                       "bound": round(solver.BestObjectiveBound() / SCALE, 2)})
        if errors:
            result["errors"] = errors[:5]
    else:
        result.update({"feasible": False, "objective": 0.0})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
